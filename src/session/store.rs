//! A session's files on disk. The store lives in `referee-store` (`referee_store`), which builds
//! without libtorch or OpenCV (and can be fuzzed on its own); this module keeps the server's
//! `crate::session::store::…` paths.

pub use referee_store::*;
