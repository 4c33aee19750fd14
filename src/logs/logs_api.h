// The CloudWatch Logs API (AWS JSON 1.1, target prefix Logs_20140328) over a
// LogStore.
//
// Operations: CreateLogGroup, DeleteLogGroup, DescribeLogGroups,
// CreateLogStream, DeleteLogStream, DescribeLogStreams, PutLogEvents,
// GetLogEvents, FilterLogEvents, PutRetentionPolicy, DeleteRetentionPolicy,
// TagLogGroup, UntagLogGroup, ListTagsLogGroup, TagResource, UntagResource,
// ListTagsForResource.
//
// Handlers receive input already type-checked against the botocore model and
// apply the service's own rules: name patterns and lengths, limits, the
// PutLogEvents batch rules, pagination tokens. Errors use AWS's error types and,
// where known, AWS's messages.
//
// Tokens: GetLogEvents answers `f/<56 digits>` and `b/<56 digits>`, each naming
// a position in the stream's time order (so paging forward or backward sees
// every event exactly once, and at the end of the stream the forward token
// sent comes back unchanged). FilterLogEvents and the Describe calls use opaque
// tokens; an absent nextToken means the listing is complete.
#pragma once

#include <cstdint>
#include <functional>

#include "api/json_service.h"
#include "logs/log_store.h"

namespace berth::logs {

/// The clock the handlers judge event ages by (epoch milliseconds).
using NowFunction = std::function<int64_t()>;

/// Builds the Logs service. `store` must outlive the service.
api::JsonService MakeLogsService(LogStore& store, NowFunction now = LogStore::NowMs);

}  // namespace berth::logs
