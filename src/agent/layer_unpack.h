// SPDX-License-Identifier: Apache-2.0
// Unpacking of one OCI image layer (a tar stream, optionally gzip or zstd
// compressed) into a directory that later serves as an overlayfs lower dir.
//
// OCI whiteouts become overlayfs whiteouts: `.wh.<name>` turns into a 0:0
// character device at `<name>`, and `.wh..wh..opq` marks its directory opaque
// with the `trusted.overlay.opaque` xattr. Device nodes and fifos from the
// layer are never created. Every entry is checked so that nothing is written
// outside the destination: absolute paths, `..` components, writes through a
// symlink and hard links that leave the layer fail the whole unpack.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace berth::agent {

/// What an unpack did, for logs and tests.
struct UnpackStats {
  uint64_t entries = 0;          ///< Entries read from the tar stream.
  uint64_t files = 0;            ///< Regular files written.
  uint64_t directories = 0;      ///< Directories created or updated.
  uint64_t symlinks = 0;         ///< Symbolic links created.
  uint64_t hardlinks = 0;        ///< Hard links created.
  uint64_t whiteouts = 0;        ///< `.wh.<name>` entries turned into 0:0 devices.
  uint64_t opaque_dirs = 0;      ///< `.wh..wh..opq` markers applied.
  uint64_t skipped_devices = 0;  ///< Char/block devices and fifos not created.
  uint64_t skipped_other = 0;    ///< Other entries ignored (sockets, aufs metadata).
  uint64_t bytes = 0;            ///< File data bytes written.
};

/// Unpacks the layer blob at `blob_path` into `dest_dir`.
///
/// The compression (none, gzip, zstd, and whatever else libarchive detects)
/// is sniffed from the data. `dest_dir` must not exist or be an empty
/// directory; it is created with mode 0755. Owners, modes (setuid/setgid
/// included), modification times and xattrs are kept, except that xattrs in
/// the `trusted.overlay.` namespace are dropped because they would steer the
/// overlay mount. Symlinks are created as they are, whatever their target.
///
/// Errors: code "LayerInvalid" when the stream is not a readable tar or an
/// entry is unsafe (the message names the entry); "ServerException" for
/// local I/O failures. On any error `dest_dir` is removed.
///
/// Thread-safe: several layers may be unpacked at once. The process umask
/// is read and restored by libarchive under a lock held by this module.
Status UnpackLayer(const std::string& blob_path, const std::string& dest_dir,
                   UnpackStats* stats = nullptr);

}  // namespace berth::agent
