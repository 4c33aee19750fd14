// Opaque pagination tokens: the position after which the next page starts.
#pragma once

#include <optional>
#include <string>

namespace berth {

std::string EncodePageToken(const std::string& position);
// nullopt when the token was not made by EncodePageToken.
std::optional<std::string> DecodePageToken(const std::string& token);

std::string Base64Encode(const std::string& data);
std::optional<std::string> Base64Decode(const std::string& data);

}  // namespace berth
