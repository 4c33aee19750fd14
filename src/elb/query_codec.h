// SPDX-License-Identifier: Apache-2.0
// The AWS Query protocol's wire format, driven by a botocore model.
//
// Query requests arrive as form parameters (`Targets.member.1.Id=10.0.0.5`);
// DecodeQueryInput turns them into the JSON object the operation's input shape
// describes, so handlers see the same JSON a JSON 1.1 service would get.
// Answers go the other way: EncodeQueryResponse renders a handler's JSON as the
// `<OperationResponse><OperationResult>...` XML document, with `<member>` lists
// and ISO-8601 timestamps, and EncodeQueryError renders an Error as the
// `<ErrorResponse>` document botocore parses.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/model.h"
#include "common/result.h"

namespace berth::elb {

using Json = nlohmann::json;

/// Decodes form parameters into the operation's input JSON. Parameters the
/// shape does not know are ignored (newer SDKs send more). Scalars that do not
/// parse as their shape's type (an integer "abc") give a ValidationError.
Result<Json> DecodeQueryInput(const api::Model& model, const std::string& operation,
                              const std::multimap<std::string, std::string>& params);

/// Checks `input` against the input shape's required members and its min, max
/// and enum constraints. Failures give a ValidationError whose message lists
/// every violation the way AWS words them ("1 validation error detected: Value
/// '301' at 'healthCheckIntervalSeconds' failed to satisfy constraint: ...").
Status ValidateQueryInput(const api::Model& model, const std::string& operation,
                          const Json& input);

/// The XML answer for a successful call: `output` rendered by the operation's
/// output shape inside `<OperationResult>`, plus the request id.
std::string EncodeQueryResponse(const api::Model& model, const std::string& operation,
                                const Json& output, const std::string& request_id);

/// The XML error document: Type (Sender below 500, Receiver otherwise), Code,
/// Message and the request id.
std::string EncodeQueryError(const Error& error, const std::string& xml_namespace,
                             const std::string& request_id);

/// Seconds since the epoch as "2026-01-01T00:00:00.000Z".
std::string FormatIsoTimestamp(double epoch_seconds);

/// Escapes &, <, >, " and ' for XML text and attribute values.
std::string XmlEscape(std::string_view text);

}  // namespace berth::elb
