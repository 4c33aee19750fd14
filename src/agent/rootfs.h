// SPDX-License-Identifier: Apache-2.0
// The per-container root filesystem: an overlayfs mount whose lower dirs are
// the image's unpacked layers (shared, never written) and whose upper and
// work dirs belong to the container.
//
// Layout under a container directory:
//   rootfs/   the overlay mount point, given to runc as root.path
//   upper/    the container's writes
//   work/     overlayfs scratch space
//
// Read-only root filesystems: the overlay is always mounted read-write with
// an upper dir. runc must create mount points (/proc, /dev, /etc/hosts, ...)
// inside the rootfs before it starts the process, which a read-only overlay
// would forbid for images lacking them; the runtime instead sets
// `root.readonly` in the OCI spec and runc remounts the root read-only
// inside the container's mount namespace once its mounts are in place.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

/// Mounts the overlay at `container_dir`/rootfs and returns that path.
///
/// `lower_dirs_bottom_first` lists the layer directories in manifest order
/// (base layer first); at least one is required. `read_only` is accepted for
/// the caller's record but does not change the mount (see above). When the
/// rootfs is already an overlay mount (e.g. after an agent restart) it is
/// left as is and its path returned.
///
/// The kernel caps mount options at one page. When absolute lower paths do
/// not fit, the mount is made from a helper process whose working directory
/// is the lower dirs' common parent, with relative lower paths; if even that
/// does not fit the call fails with "RootfsTooManyLayers".
///
/// Errors: "InvalidParameterException" (no layers, path with ',' ':' or
/// '\\'), "RootfsTooManyLayers", "ServerException" (mount failure).
Result<std::string> MountRootfs(const std::vector<std::string>& lower_dirs_bottom_first,
                                const std::string& container_dir, bool read_only);

/// Unmounts `container_dir`/rootfs (falling back to a lazy detach when it is
/// busy) and removes the rootfs, upper and work dirs. `container_dir` itself
/// stays. Succeeds when nothing is mounted or the dirs are already gone.
Status UnmountRootfs(const std::string& container_dir);

}  // namespace berth::agent
