// Operations and shapes of the live AWS APIs that older botocore snapshots
// lack. Model::Get merges them into an embedded model where it has no
// operation or shape of the same name, so a newer botocore's own
// definitions always win.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::api {

/// {"operations": {...}, "shapes": {...}} for `service` ("ecs", ...); an
/// empty object when berth adds nothing to that service's model.
nlohmann::json ModelOverlay(std::string_view service);

}  // namespace berth::api
