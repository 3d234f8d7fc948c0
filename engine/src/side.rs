//! One of the two fencers, as the picture shows them.

use serde::Serialize;

/// One of the two fencers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The fencer on the left of the picture (Fencer 2, red lamp).
    Left,
    /// The fencer on the right of the picture (Fencer 1, green lamp).
    Right,
}


impl Side {
    /// `left` or `right`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    /// `Left` or `Right`.
    pub fn title(self) -> &'static str {
        match self {
            Side::Left => "Left",
            Side::Right => "Right",
        }
    }

    /// The other fencer.
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    /// +1 when forward is increasing x (left fencer), −1 otherwise.
    pub fn direction(self) -> f64 {
        match self {
            Side::Left => 1.0,
            Side::Right => -1.0,
        }
    }
}
