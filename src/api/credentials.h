// Access keys on disk, in the AWS CLI's shared credentials format.
#pragma once

#include <string>

#include "api/sigv4.h"
#include "common/result.h"

namespace berth::api {

// Adds every profile's aws_access_key_id / aws_secret_access_key in `path`.
Status LoadCredentialsFile(const std::string& path, KeyRing& keys);

// Makes sure `<data_dir>/credentials` (mode 0600, profile `default`) and
// `<data_dir>/config` (the region) exist, creating a fresh key pair on first
// start, and adds the key to `keys`. Secrets are never logged.
Status EnsureDataDirCredentials(const std::string& data_dir, const std::string& region,
                                KeyRing& keys);

}  // namespace berth::api
