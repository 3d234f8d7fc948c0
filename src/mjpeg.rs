//! The streamed phrase body's parser. It lives in `referee-wire` (`referee_wire::mjpeg`), beside
//! the writer of the same parts, so that it builds without libtorch or OpenCV (and can be fuzzed
//! on its own); this module keeps the server's `crate::mjpeg::…` paths.

pub use referee_wire::mjpeg::*;
