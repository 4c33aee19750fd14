// Random identifiers: UUIDs, hex strings, and the id forms AWS uses.
#pragma once

#include <cstddef>
#include <string>

namespace berth {

// A random (version 4) UUID in lower-case canonical form.
std::string NewUuid();

// `bytes` random bytes as lower-case hex (2 * bytes characters).
std::string RandomHex(size_t bytes);

// Random characters from [A-Z0-9] (AWS access key ids) or [A-Za-z0-9+/] (secrets).
std::string RandomUpperAlnum(size_t length);
std::string RandomSecret(size_t length);

}  // namespace berth
