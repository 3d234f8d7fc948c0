//! What the server and the piste client agree on over the wire, in one place: the session id rule
//! and fresh ids (`session_id`), the streamed `multipart/x-mixed-replace` body of `POST /stream`
//! (`parts`): its header names and the writer of its parts, and the server's streaming parser of
//! that body ([`mjpeg`]). Pure Rust over bytes and streams: no HTTP server, no async runtime, no
//! OpenCV, no libtorch.

#[doc(hidden)]
pub mod fuzzing;
pub mod mjpeg;
mod parts;
mod random;
mod session_id;

pub use parts::{
    new_boundary, PartWriter, FRAME_CONTENT_TYPE, FRAME_INDEX_HEADER, SESSION_ID_HEADER, SIGNAL_CONTENT_TYPE, SIGNAL_FILENAME,
    SIGNAL_PART_NAME, STREAM_CONTENT_TYPE, TIMESTAMP_HEADER,
};
pub use session_id::{new_session_id, new_session_id_with_prefix, valid_session_id, SESSION_ID_MAX_LEN};
