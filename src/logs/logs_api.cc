#include "logs/logs_api.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "logs/filter_pattern.h"

namespace berth::logs {

namespace {

using api::CallContext;
using api::Json;

constexpr int64_t kHourMs = 3600 * 1000LL;
constexpr int64_t kDayMs = 24 * kHourMs;
constexpr size_t kMaxBatchBytes = 1'048'576;
constexpr size_t kPerEventBytes = 26;
constexpr size_t kMaxBatchEvents = 10'000;
constexpr size_t kMaxNameLength = 512;
constexpr size_t kMaxTags = 50;
constexpr std::array<int, 22> kRetentionDays = {1,    3,    5,    7,    14,   30,  60,  90,
                                                120,  150,  180,  365,  400,  545, 731, 1096,
                                                1827, 2192, 2557, 2922, 3288, 3653};

// ---------------------------------------------------------------------------
// Errors

Error InvalidParameter(std::string message) {
  return ClientError("InvalidParameterException", std::move(message));
}

// The message AWS's request validation produces for one failed constraint.
Error Constraint(std::string_view value, std::string_view member, std::string_view constraint) {
  return InvalidParameter(fmt::format(
      "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: {}", value,
      member, constraint));
}

Error InvalidToken() {
  return InvalidParameter("The specified nextToken is invalid.");
}

// ---------------------------------------------------------------------------
// Reading input members. The front has checked the JSON types against the
// model; these still refuse a wrong type rather than throw.

Result<std::optional<std::string>> OptString(const Json& in, const char* member) {
  auto it = in.find(member);
  if (it == in.end() || it->is_null()) {
    return std::optional<std::string>();
  }
  if (!it->is_string()) {
    return InvalidParameter(fmt::format("{} must be a string", member));
  }
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<int64_t>> OptInt(const Json& in, const char* member) {
  auto it = in.find(member);
  if (it == in.end() || it->is_null()) {
    return std::optional<int64_t>();
  }
  if (!it->is_number_integer()) {
    return InvalidParameter(fmt::format("{} must be an integer", member));
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<bool> OptBool(const Json& in, const char* member, bool fallback) {
  auto it = in.find(member);
  if (it == in.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_boolean()) {
    return InvalidParameter(fmt::format("{} must be a boolean", member));
  }
  return it->get<bool>();
}

Result<std::vector<std::string>> OptStringList(const Json& in, const char* member) {
  std::vector<std::string> out;
  auto it = in.find(member);
  if (it == in.end() || it->is_null()) {
    return out;
  }
  if (!it->is_array()) {
    return InvalidParameter(fmt::format("{} must be a list", member));
  }
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return InvalidParameter(fmt::format("{} must hold strings", member));
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::map<std::string, std::string>> OptTags(const Json& in, const char* member) {
  std::map<std::string, std::string> out;
  auto it = in.find(member);
  if (it == in.end() || it->is_null()) {
    return out;
  }
  if (!it->is_object()) {
    return InvalidParameter(fmt::format("{} must be a map", member));
  }
  for (auto t = it->begin(); t != it->end(); ++t) {
    if (!t.value().is_string()) {
      return InvalidParameter(fmt::format("{} values must be strings", member));
    }
    out[t.key()] = t.value().get<std::string>();
  }
  return out;
}

// Unwraps a Result into `var` or returns its error from the handler.
#define BERTH_LOGS_ASSIGN(var, expr) \
  auto var##_result_ = (expr);       \
  if (!var##_result_.ok()) {         \
    return var##_result_.error();    \
  }                                  \
  auto var = std::move(var##_result_).value()

// ---------------------------------------------------------------------------
// Validation of names, limits and tags

bool IsGroupNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == '/' || c == '#';
}

Status CheckGroupName(const std::string& name, const char* member) {
  if (name.size() > kMaxNameLength) {
    return InvalidParameter(
        "Invalid LogGroup or LogStream, both must have length less than or equal to 512.");
  }
  if (name.empty()) {
    return Constraint(name, member, "Member must have length greater than or equal to 1");
  }
  if (!std::all_of(name.begin(), name.end(), IsGroupNameChar)) {
    return Constraint(name, member,
                      "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+");
  }
  return Ok();
}

Status CheckStreamName(const std::string& name, const char* member) {
  if (name.size() > kMaxNameLength) {
    return InvalidParameter(
        "Invalid LogGroup or LogStream, both must have length less than or equal to 512.");
  }
  if (name.empty()) {
    return Constraint(name, member, "Member must have length greater than or equal to 1");
  }
  if (name.find_first_of(":*") != std::string::npos) {
    return Constraint(name, member, "Member must satisfy regular expression pattern: [^:*]*");
  }
  return Ok();
}

Result<size_t> Limit(const Json& in, int64_t max, int64_t fallback) {
  BERTH_LOGS_ASSIGN(limit, OptInt(in, "limit"));
  if (!limit) {
    return static_cast<size_t>(fallback);
  }
  if (*limit < 1) {
    return Constraint(std::to_string(*limit), "limit",
                      "Member must have value greater than or equal to 1");
  }
  if (*limit > max) {
    return Constraint(std::to_string(*limit), "limit",
                      fmt::format("Member must have value less than or equal to {}", max));
  }
  return static_cast<size_t>(*limit);
}

Status CheckTags(const std::map<std::string, std::string>& tags, const char* member) {
  if (tags.size() > kMaxTags) {
    return InvalidParameter(fmt::format(
        "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must "
        "have length less than or equal to {}",
        member, kMaxTags));
  }
  for (const auto& [k, v] : tags) {
    if (k.empty() || k.size() > 128) {
      return Constraint(k, fmt::format("{}.key", member),
                        "Member must have length between 1 and 128");
    }
    if (v.size() > 256) {
      return Constraint(v, fmt::format("{}.value", member),
                        "Member must have length less than or equal to 256");
    }
  }
  return Ok();
}

Result<std::string> RequiredString(const Json& in, const char* member) {
  BERTH_LOGS_ASSIGN(value, OptString(in, member));
  if (!value) {
    return InvalidParameter(fmt::format(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member "
        "must not be null",
        member));
  }
  return *value;
}

// ---------------------------------------------------------------------------
// ARNs and names

std::string GroupArn(const CallContext& ctx, std::string_view name) {
  return fmt::format("arn:aws:logs:{}:{}:log-group:{}", ctx.region, ctx.account_id, name);
}

// The log group name inside a log group ARN
// (arn:<partition>:logs:<region>:<account>:log-group:<name>[:*]), or nullopt.
std::optional<std::string> GroupFromArn(std::string_view arn) {
  // arn : partition : service : region : account : resource
  std::array<std::string_view, 5> parts;
  size_t pos = 0;
  for (auto& part : parts) {
    size_t colon = arn.find(':', pos);
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    part = arn.substr(pos, colon - pos);
    pos = colon + 1;
  }
  if (parts[0] != "arn" || parts[2] != "logs") {
    return std::nullopt;
  }
  std::string_view resource = arn.substr(pos);
  constexpr std::string_view kPrefix = "log-group:";
  if (resource.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  std::string_view name = resource.substr(kPrefix.size());
  if (name.size() >= 2 && name.substr(name.size() - 2) == ":*") {
    name.remove_suffix(2);
  }
  if (name.empty() || name.find(':') != std::string_view::npos) {
    return std::nullopt;
  }
  return std::string(name);
}

// The group an operation addresses, by logGroupName or logGroupIdentifier
// (a name or an ARN).
Result<std::string> ResolveGroup(const Json& in) {
  BERTH_LOGS_ASSIGN(name, OptString(in, "logGroupName"));
  BERTH_LOGS_ASSIGN(identifier, OptString(in, "logGroupIdentifier"));
  if (name && identifier) {
    return Error{400,
                 "ValidationException",
                 "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
                 {}};
  }
  if (name) {
    BERTH_TRY(CheckGroupName(*name, "logGroupName"));
    return *name;
  }
  if (!identifier) {
    return InvalidParameter("Either logGroupName or logGroupIdentifier must be specified.");
  }
  if (identifier->rfind("arn:", 0) == 0) {
    auto group = GroupFromArn(*identifier);
    if (!group) {
      return InvalidParameter("The specified logGroupIdentifier is not a valid log group ARN.");
    }
    BERTH_TRY(CheckGroupName(*group, "logGroupIdentifier"));
    return *group;
  }
  BERTH_TRY(CheckGroupName(*identifier, "logGroupIdentifier"));
  return *identifier;
}

Result<std::string> GroupFromResourceArn(const Json& in) {
  BERTH_LOGS_ASSIGN(arn, RequiredString(in, "resourceArn"));
  auto group = GroupFromArn(arn);
  if (!group) {
    if (arn.rfind("arn:", 0) == 0 && arn.find(":logs:") != std::string::npos) {
      return ClientError("ResourceNotFoundException", "The specified resource does not exist.");
    }
    return InvalidParameter(fmt::format("Invalid ARN: {}", arn));
  }
  BERTH_TRY(CheckGroupName(*group, "resourceArn"));
  return *group;
}

// ---------------------------------------------------------------------------
// Tokens

uint64_t Fnv1a(std::string_view data, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t TokenCheck(std::string_view scope, EventKey key) {
  uint64_t h = Fnv1a(scope);
  h = Fnv1a(std::to_string(key.timestamp), h);
  h = Fnv1a(std::string_view("/"), h);
  return Fnv1a(std::to_string(key.event_id), h);
}

std::string StreamScope(std::string_view group, std::string_view stream) {
  return fmt::format("{}\n{}", group, stream);
}

// GetLogEvents tokens: "f/" or "b/", then 56 digits: the key's timestamp and
// event id (19 digits each) and an 18-digit check tying the token to its stream.
std::string EventToken(char direction, std::string_view scope, EventKey key) {
  return fmt::format("{}/{:019d}{:019d}{:018d}", direction, key.timestamp, key.event_id,
                     TokenCheck(scope, key) % 1'000'000'000'000'000'000ull);
}

bool ParseDigits(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out >= 0;
}

Result<std::pair<char, EventKey>> ParseEventToken(std::string_view token, std::string_view scope) {
  if (token.size() != 58 || (token[0] != 'f' && token[0] != 'b') || token[1] != '/') {
    return InvalidToken();
  }
  EventKey key;
  int64_t check = 0;
  std::string_view digits = token.substr(2);
  if (!ParseDigits(digits.substr(0, 19), &key.timestamp) ||
      !ParseDigits(digits.substr(19, 19), &key.event_id) ||
      !ParseDigits(digits.substr(38, 18), &check) ||
      static_cast<uint64_t>(check) != TokenCheck(scope, key) % 1'000'000'000'000'000'000ull) {
    return InvalidToken();
  }
  return std::make_pair(token[0], key);
}

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view data) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : data) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) {
    out.push_back(kBase64Url[(acc << (6 - bits)) & 0x3f]);
  }
  return out;
}

std::optional<std::string> FromBase64Url(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const char* p = std::char_traits<char>::find(kBase64Url, 64, c);
    if (p == nullptr) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(p - kBase64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// Opaque tokens for listings: a position plus a check over what it belongs to.
std::string OpaqueToken(std::string_view scope, std::string_view position) {
  uint64_t check = Fnv1a(position, Fnv1a(scope));
  return Base64Url(fmt::format("{:016x}{}", check, position));
}

Result<std::string> ParseOpaqueToken(std::string_view token, std::string_view scope) {
  auto raw = FromBase64Url(token);
  if (!raw || raw->size() < 16) {
    return InvalidToken();
  }
  std::string position = raw->substr(16);
  if (raw->substr(0, 16) != fmt::format("{:016x}", Fnv1a(position, Fnv1a(scope)))) {
    return InvalidToken();
  }
  return position;
}

std::string EventId(EventKey key) {
  return fmt::format("{:019d}{:019d}{:018d}", key.timestamp, key.event_id, 0);
}

// ---------------------------------------------------------------------------
// Handlers

class LogsApi {
 public:
  LogsApi(LogStore& store, NowFunction now) : store_(store), now_(std::move(now)) {}

  Result<Json> CreateLogGroup(const Json& in, const CallContext& ctx) {
    BERTH_LOGS_ASSIGN(name, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(name, "logGroupName"));
    BERTH_LOGS_ASSIGN(kms, OptString(in, "kmsKeyId"));
    BERTH_LOGS_ASSIGN(tags, OptTags(in, "tags"));
    BERTH_TRY(CheckTags(tags, "tags"));
    GroupOptions options{kms.value_or(""), std::move(tags), GroupArn(ctx, name)};
    BERTH_TRY(store_.CreateGroup(name, std::move(options), now_()));
    return Json::object();
  }

  Result<Json> DeleteLogGroup(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(name, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(name, "logGroupName"));
    BERTH_TRY(store_.DeleteGroup(name));
    return Json::object();
  }

  Result<Json> DescribeLogGroups(const Json& in, const CallContext& ctx) {
    BERTH_LOGS_ASSIGN(prefix, OptString(in, "logGroupNamePrefix"));
    BERTH_LOGS_ASSIGN(pattern, OptString(in, "logGroupNamePattern"));
    if (prefix && pattern) {
      return InvalidParameter(
          "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.");
    }
    if (prefix) {
      BERTH_TRY(CheckGroupName(*prefix, "logGroupNamePrefix"));
    }
    BERTH_LOGS_ASSIGN(limit, Limit(in, 50, 50));
    BERTH_LOGS_ASSIGN(token, OptString(in, "nextToken"));
    std::optional<std::string> after;
    if (token) {
      BERTH_LOGS_ASSIGN(position, ParseOpaqueToken(*token, "groups"));
      after = std::move(position);
    }

    Json groups = Json::array();
    std::optional<std::string> last;
    bool more = false;
    for (auto& g : store_.ListGroups(prefix.value_or(""))) {
      if (pattern && g.name.find(*pattern) == std::string::npos) {
        continue;
      }
      if (after && g.name <= *after) {
        continue;
      }
      if (groups.size() == limit) {
        more = true;
        break;
      }
      groups.push_back(GroupJson(g, ctx));
      last = g.name;
    }
    Json out{{"logGroups", std::move(groups)}};
    if (more) {
      out["nextToken"] = OpaqueToken("groups", *last);
    }
    return out;
  }

  Result<Json> CreateLogStream(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(stream, RequiredString(in, "logStreamName"));
    BERTH_TRY(CheckStreamName(stream, "logStreamName"));
    BERTH_TRY(store_.CreateStream(group, stream, now_()));
    return Json::object();
  }

  Result<Json> DeleteLogStream(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(stream, RequiredString(in, "logStreamName"));
    BERTH_TRY(CheckStreamName(stream, "logStreamName"));
    BERTH_TRY(store_.DeleteStream(group, stream));
    return Json::object();
  }

  Result<Json> DescribeLogStreams(const Json& in, const CallContext& ctx) {
    BERTH_LOGS_ASSIGN(group, ResolveGroup(in));
    BERTH_LOGS_ASSIGN(prefix, OptString(in, "logStreamNamePrefix"));
    if (prefix) {
      BERTH_TRY(CheckStreamName(*prefix, "logStreamNamePrefix"));
    }
    BERTH_LOGS_ASSIGN(order, OptString(in, "orderBy"));
    const std::string order_by = order.value_or("LogStreamName");
    if (order_by != "LogStreamName" && order_by != "LastEventTime") {
      return Constraint(order_by, "orderBy",
                        "Member must satisfy enum value set: [LogStreamName, LastEventTime]");
    }
    const bool by_time = order_by == "LastEventTime";
    if (by_time && prefix) {
      return InvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.");
    }
    BERTH_LOGS_ASSIGN(descending, OptBool(in, "descending", false));
    BERTH_LOGS_ASSIGN(limit, Limit(in, 50, 50));
    BERTH_LOGS_ASSIGN(token, OptString(in, "nextToken"));
    const std::string scope = fmt::format("streams\n{}\n{}\n{}", group, order_by, descending);
    std::optional<std::string> after;
    if (token) {
      BERTH_LOGS_ASSIGN(position, ParseOpaqueToken(*token, scope));
      after = std::move(position);
    }

    BERTH_LOGS_ASSIGN(streams, store_.ListStreams(group, prefix.value_or("")));
    // The sort key as a string that orders like the key itself.
    auto sort_key = [by_time](const StreamInfo& s) {
      return by_time ? fmt::format("{:020d}{}", s.last_event_timestamp, s.name) : s.name;
    };
    std::vector<std::pair<std::string, const StreamInfo*>> keyed;
    keyed.reserve(streams.size());
    for (const auto& s : streams) {
      keyed.emplace_back(sort_key(s), &s);
    }
    std::sort(keyed.begin(), keyed.end());
    if (descending) {
      std::reverse(keyed.begin(), keyed.end());
    }

    Json list = Json::array();
    std::optional<std::string> last;
    bool more = false;
    for (const auto& [key, s] : keyed) {
      if (after && (descending ? key >= *after : key <= *after)) {
        continue;
      }
      if (list.size() == limit) {
        more = true;
        break;
      }
      list.push_back(StreamJson(*s, group, ctx));
      last = key;
    }
    Json out{{"logStreams", std::move(list)}};
    if (more) {
      out["nextToken"] = OpaqueToken(scope, *last);
    }
    return out;
  }

  Result<Json> PutLogEvents(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(stream, RequiredString(in, "logStreamName"));
    BERTH_TRY(CheckStreamName(stream, "logStreamName"));
    BERTH_LOGS_ASSIGN(events, ParseEvents(in));

    BERTH_LOGS_ASSIGN(info, store_.GetGroup(group));
    BERTH_LOGS_ASSIGN(before, store_.GetStream(group, stream));
    const int64_t now = now_();

    // Events too far in the past form a prefix of the (chronological) batch and
    // events too far in the future a suffix; both are refused, not failed.
    const int64_t n = static_cast<int64_t>(events.size());
    int64_t too_old_end = -1;
    int64_t expired_end = -1;
    int64_t too_new_start = n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t ts = events[static_cast<size_t>(i)].timestamp;
      if (ts < now - 14 * kDayMs) {
        too_old_end = i;
      }
      if (info.retention_days && ts < now - int64_t{*info.retention_days} * kDayMs) {
        expired_end = i;
      }
      if (ts > now + 2 * kHourMs && too_new_start == n) {
        too_new_start = i;
      }
    }
    const int64_t first = std::max(too_old_end, expired_end) + 1;
    int64_t last_id = before.last_event_id;
    if (first < too_new_start) {
      auto accepted = std::span<const InputEvent>(events).subspan(
          static_cast<size_t>(first), static_cast<size_t>(too_new_start - first));
      BERTH_LOGS_ASSIGN(appended, store_.Append(group, stream, accepted, now));
      last_id = appended.last_event_id;
    }

    Json out{{"nextSequenceToken", fmt::format("{:056d}", last_id)}};
    Json rejected = Json::object();
    if (too_new_start < n) {
      rejected["tooNewLogEventStartIndex"] = too_new_start;
    }
    if (too_old_end >= 0) {
      rejected["tooOldLogEventEndIndex"] = too_old_end;
    }
    if (expired_end >= 0) {
      rejected["expiredLogEventEndIndex"] = expired_end;
    }
    if (!rejected.empty()) {
      out["rejectedLogEventsInfo"] = std::move(rejected);
    }
    return out;
  }

  Result<Json> GetLogEvents(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, ResolveGroup(in));
    BERTH_LOGS_ASSIGN(stream, RequiredString(in, "logStreamName"));
    BERTH_TRY(CheckStreamName(stream, "logStreamName"));
    BERTH_LOGS_ASSIGN(limit, Limit(in, 10000, 10000));
    BERTH_LOGS_ASSIGN(start, OptInt(in, "startTime"));
    BERTH_LOGS_ASSIGN(end, OptInt(in, "endTime"));
    BERTH_LOGS_ASSIGN(from_head, OptBool(in, "startFromHead", false));
    BERTH_LOGS_ASSIGN(token, OptString(in, "nextToken"));
    const std::string scope = StreamScope(group, stream);

    ReadQuery q;
    q.start_time = start.value_or(0);
    q.end_time = end.value_or(kMaxTime);  // GetLogEvents' endTime is exclusive
    q.limit = limit;
    q.forward = from_head;
    std::optional<EventKey> position;
    if (token) {
      BERTH_LOGS_ASSIGN(parsed, ParseEventToken(*token, scope));
      q.forward = parsed.first == 'f';
      position = parsed.second;
      if (q.forward) {
        q.after = position;
      } else {
        q.before = position;
      }
    }
    BERTH_LOGS_ASSIGN(page, store_.Read(group, stream, q));

    Json events = Json::array();
    for (const auto& e : page.events) {
      events.push_back({{"timestamp", e.timestamp},
                        {"message", e.message},
                        {"ingestionTime", e.ingestion_time}});
    }
    // An empty page leaves the position where it was: the token sent comes
    // back, which is how clients know they reached the end.
    EventKey forward_key = position.value_or(EventKey{0, 0});
    EventKey backward_key = position.value_or(EventKey{kMaxTime, kMaxTime});
    if (!page.events.empty()) {
      forward_key = page.events.back().key();
      backward_key = page.events.front().key();
    }
    return Json{{"events", std::move(events)},
                {"nextForwardToken", EventToken('f', scope, forward_key)},
                {"nextBackwardToken", EventToken('b', scope, backward_key)}};
  }

  Result<Json> FilterLogEvents(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, ResolveGroup(in));
    BERTH_LOGS_ASSIGN(names, OptStringList(in, "logStreamNames"));
    BERTH_LOGS_ASSIGN(prefix, OptString(in, "logStreamNamePrefix"));
    if (!names.empty() && prefix) {
      return InvalidParameter(
          "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.");
    }
    if (names.size() > 100) {
      return InvalidParameter(
          "1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: "
          "Member must have length less than or equal to 100");
    }
    for (const auto& n : names) {
      BERTH_TRY(CheckStreamName(n, "logStreamNames"));
    }
    if (prefix) {
      BERTH_TRY(CheckStreamName(*prefix, "logStreamNamePrefix"));
    }
    BERTH_LOGS_ASSIGN(start, OptInt(in, "startTime"));
    BERTH_LOGS_ASSIGN(end, OptInt(in, "endTime"));
    BERTH_LOGS_ASSIGN(pattern_text, OptString(in, "filterPattern"));
    BERTH_LOGS_ASSIGN(pattern, FilterPattern::Parse(pattern_text.value_or("")));
    BERTH_LOGS_ASSIGN(limit, Limit(in, 10000, 10000));
    BERTH_LOGS_ASSIGN(token, OptString(in, "nextToken"));

    FilterQuery q;
    q.stream_names = std::move(names);
    q.stream_prefix = prefix.value_or("");
    q.start_time = start.value_or(0);
    // FilterLogEvents' endTime is inclusive.
    q.end_time = end ? (*end >= kMaxTime - 1 ? kMaxTime : *end + 1) : kMaxTime;
    q.limit = limit;
    if (!pattern.MatchesAll()) {
      q.matcher = [&pattern](std::string_view m) {
        return pattern.Matches(m);
      };
    }
    const std::string scope = "filter\n" + group;
    if (token) {
      BERTH_LOGS_ASSIGN(position, ParseOpaqueToken(*token, scope));
      auto slash = position.find('/');
      EventKey key;
      if (slash == std::string::npos || !ParseDigits(position.substr(0, slash), &key.timestamp) ||
          !ParseDigits(position.substr(slash + 1), &key.event_id)) {
        return InvalidToken();
      }
      q.after = key;
    }
    BERTH_LOGS_ASSIGN(page, store_.Filter(group, q));

    Json events = Json::array();
    for (const auto& fe : page.events) {
      const LogEvent& e = fe.event;
      events.push_back({{"logStreamName", page.streams[fe.stream]},
                        {"timestamp", e.timestamp},
                        {"message", e.message},
                        {"ingestionTime", e.ingestion_time},
                        {"eventId", EventId(e.key())}});
    }
    // searchedLogStreams is no longer filled in by AWS: always an empty list.
    Json out{{"events", std::move(events)}, {"searchedLogStreams", Json::array()}};
    if (page.resume_after) {
      out["nextToken"] = OpaqueToken(
          scope, fmt::format("{}/{}", page.resume_after->timestamp, page.resume_after->event_id));
    }
    return out;
  }

  Result<Json> PutRetentionPolicy(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(days, OptInt(in, "retentionInDays"));
    if (!days) {
      return InvalidParameter(
          "1 validation error detected: Value null at 'retentionInDays' failed to satisfy "
          "constraint: Member must not be null");
    }
    if (std::find(kRetentionDays.begin(), kRetentionDays.end(), *days) == kRetentionDays.end()) {
      return Constraint(
          std::to_string(*days), "retentionInDays",
          fmt::format("Member must satisfy enum value set: [{}]", fmt::join(kRetentionDays, ", ")));
    }
    BERTH_TRY(store_.SetRetention(group, static_cast<int>(*days)));
    return Json::object();
  }

  Result<Json> DeleteRetentionPolicy(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_TRY(store_.SetRetention(group, std::nullopt));
    return Json::object();
  }

  Result<Json> TagLogGroup(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(tags, OptTags(in, "tags"));
    BERTH_TRY(CheckTags(tags, "tags"));
    Status st = store_.TagGroup(group, tags, kMaxTags);
    if (!st.ok() && st.error().code == "TooManyTagsException") {
      // TagLogGroup has no TooManyTagsException in its contract.
      return InvalidParameter(st.error().message);
    }
    BERTH_TRY(st);
    return Json::object();
  }

  Result<Json> UntagLogGroup(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(keys, OptStringList(in, "tags"));
    BERTH_TRY(store_.UntagGroup(group, keys));
    return Json::object();
  }

  Result<Json> ListTagsLogGroup(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, RequiredString(in, "logGroupName"));
    BERTH_TRY(CheckGroupName(group, "logGroupName"));
    BERTH_LOGS_ASSIGN(info, store_.GetGroup(group));
    return Json{{"tags", info.tags}};
  }

  Result<Json> TagResource(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, GroupFromResourceArn(in));
    BERTH_LOGS_ASSIGN(tags, OptTags(in, "tags"));
    BERTH_TRY(CheckTags(tags, "tags"));
    BERTH_TRY(store_.TagGroup(group, tags, kMaxTags));
    return Json::object();
  }

  Result<Json> UntagResource(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, GroupFromResourceArn(in));
    BERTH_LOGS_ASSIGN(keys, OptStringList(in, "tagKeys"));
    BERTH_TRY(store_.UntagGroup(group, keys));
    return Json::object();
  }

  Result<Json> ListTagsForResource(const Json& in, const CallContext&) {
    BERTH_LOGS_ASSIGN(group, GroupFromResourceArn(in));
    BERTH_LOGS_ASSIGN(info, store_.GetGroup(group));
    return Json{{"tags", info.tags}};
  }

 private:
  Json GroupJson(const GroupInfo& g, const CallContext& ctx) const {
    const std::string arn = g.arn.empty() ? GroupArn(ctx, g.name) : g.arn;
    Json j{{"logGroupName", g.name},
           {"creationTime", g.creation_time},
           {"metricFilterCount", 0},
           {"arn", arn + ":*"},
           {"logGroupArn", arn},
           {"logGroupClass", "STANDARD"},
           {"deletionProtectionEnabled", false},
           {"storedBytes", g.stored_bytes}};
    if (g.retention_days) {
      j["retentionInDays"] = *g.retention_days;
    }
    if (!g.kms_key_id.empty()) {
      j["kmsKeyId"] = g.kms_key_id;
    }
    return j;
  }

  Json StreamJson(const StreamInfo& s, const std::string& group, const CallContext& ctx) const {
    // storedBytes of log streams is no longer reported by AWS: always 0.
    Json j{{"logStreamName", s.name},
           {"creationTime", s.creation_time},
           {"arn", fmt::format("{}:log-stream:{}", GroupArn(ctx, group), s.name)},
           {"storedBytes", 0}};
    if (s.event_count > 0) {
      j["firstEventTimestamp"] = s.first_event_timestamp;
      j["lastEventTimestamp"] = s.last_event_timestamp;
      j["lastIngestionTime"] = s.last_ingestion_time;
    }
    if (s.last_event_id > 0) {
      j["uploadSequenceToken"] = fmt::format("{:056d}", s.last_event_id);
    }
    return j;
  }

  // The batch of a PutLogEvents call, checked against the batch rules.
  static Result<std::vector<InputEvent>> ParseEvents(const Json& in) {
    auto it = in.find("logEvents");
    if (it == in.end() || it->is_null()) {
      return InvalidParameter(
          "1 validation error detected: Value null at 'logEvents' failed to satisfy constraint: "
          "Member must not be null");
    }
    if (!it->is_array()) {
      return InvalidParameter("logEvents must be a list");
    }
    if (it->empty()) {
      return InvalidParameter(
          "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: "
          "Member must have length greater than or equal to 1");
    }
    if (it->size() > kMaxBatchEvents) {
      return InvalidParameter(fmt::format(
          "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: "
          "Member must have length less than or equal to {}",
          kMaxBatchEvents));
    }
    std::vector<InputEvent> events;
    events.reserve(it->size());
    size_t bytes = 0;
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& e = (*it)[i];
      // Named only in errors: formatting it for every event costs more than the checks.
      auto member = [i] { return fmt::format("logEvents.{}.member", i + 1); };
      if (!e.is_object()) {
        return InvalidParameter(member() + " must be a structure");
      }
      auto ts = e.find("timestamp");
      auto msg = e.find("message");
      if (ts == e.end() || !ts->is_number_integer()) {
        return InvalidParameter(fmt::format(
            "1 validation error detected: Value null at '{}.timestamp' failed to satisfy "
            "constraint: Member must not be null",
            member()));
      }
      if (msg == e.end() || !msg->is_string()) {
        return InvalidParameter(
            fmt::format("1 validation error detected: Value null at '{}.message' failed to satisfy "
                        "constraint: Member must not be null",
                        member()));
      }
      InputEvent event{ts->get<int64_t>(), msg->get<std::string>()};
      if (event.timestamp < 0) {
        return Constraint(std::to_string(event.timestamp), member() + ".timestamp",
                          "Member must have value greater than or equal to 0");
      }
      if (event.message.empty()) {
        return Constraint("", member() + ".message",
                          "Member must have length greater than or equal to 1");
      }
      bytes += event.message.size() + kPerEventBytes;
      events.push_back(std::move(event));
    }
    for (size_t i = 1; i < events.size(); ++i) {
      if (events[i].timestamp < events[i - 1].timestamp) {
        return InvalidParameter(
            "Log events in a single PutLogEvents request must be in chronological order.");
      }
    }
    if (events.back().timestamp - events.front().timestamp > kDayMs) {
      return InvalidParameter(
          "The batch of log events in a single PutLogEvents request cannot span more than 24 "
          "hours.");
    }
    if (bytes > kMaxBatchBytes) {
      return InvalidParameter(
          fmt::format("Upload too large: {} bytes exceeds limit of {}", bytes, kMaxBatchBytes));
    }
    return events;
  }

  LogStore& store_;
  NowFunction now_;
};

#undef BERTH_LOGS_ASSIGN

}  // namespace

api::JsonService MakeLogsService(LogStore& store, NowFunction now) {
  auto impl = std::make_shared<LogsApi>(store, std::move(now));
  api::JsonService service("Logs_20140328", "logs");
  using Method = Result<Json> (LogsApi::*)(const Json&, const CallContext&);
  const std::pair<const char*, Method> operations[] = {
      {"CreateLogGroup", &LogsApi::CreateLogGroup},
      {"DeleteLogGroup", &LogsApi::DeleteLogGroup},
      {"DescribeLogGroups", &LogsApi::DescribeLogGroups},
      {"CreateLogStream", &LogsApi::CreateLogStream},
      {"DeleteLogStream", &LogsApi::DeleteLogStream},
      {"DescribeLogStreams", &LogsApi::DescribeLogStreams},
      {"PutLogEvents", &LogsApi::PutLogEvents},
      {"GetLogEvents", &LogsApi::GetLogEvents},
      {"FilterLogEvents", &LogsApi::FilterLogEvents},
      {"PutRetentionPolicy", &LogsApi::PutRetentionPolicy},
      {"DeleteRetentionPolicy", &LogsApi::DeleteRetentionPolicy},
      {"TagLogGroup", &LogsApi::TagLogGroup},
      {"UntagLogGroup", &LogsApi::UntagLogGroup},
      {"ListTagsLogGroup", &LogsApi::ListTagsLogGroup},
      {"TagResource", &LogsApi::TagResource},
      {"UntagResource", &LogsApi::UntagResource},
      {"ListTagsForResource", &LogsApi::ListTagsForResource},
  };
  for (const auto& [name, method] : operations) {
    service.Add(name, [impl, method](const Json& in, const CallContext& ctx) {
      return ((*impl).*method)(in, ctx);
    });
  }
  return service;
}

}  // namespace berth::logs
