//! The time of each frame on the log's clock: from a stream's timestamps, a video's rate, or
//! estimated for a recorded phrase from its log.

use serde::Serialize;

use crate::signal::events::PhraseLog;

/// Recorded phrases' cameras run at one of these rates (frames per second).
pub const NOMINAL_RATES: [f64; 3] = [15.0, 30.0, 60.0];
/// How far (seconds) the video length at a standard rate may be from the log's recording span.
pub const RATE_TOLERANCE_S: f64 = 0.6;
/// How far from the phrase's start (seconds) a stream's first timestamp may be and still be read
/// as on the phrase's clock ([`FrameTimes::from_stream_timestamps`]).
pub const PHRASE_CLOCK_SLACK_S: f64 = 2.0;

/// Frame times that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad frame times: {0}")]
pub struct TimesError(pub String);

/// Where frame times came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// Each frame's own timestamp (the stream).
    Timestamps,
    /// The video's frame rate.
    Rate,
    /// Recorded phrases without timestamps: the standard rate that fits the frame count to the
    /// log's recording span, the last frame at its end ([`FrameTimes::estimate`]).
    Estimated,
}

/// The time of each frame, in seconds on the log's clock (0 = recording started).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameTimes {
    times: Vec<f64>,
    rate: f64,
    source: TimeSource,
}


impl FrameTimes {
    /// `n` frames at `fps`, the first at 0 s.
    pub fn from_rate(fps: f64, n: usize) -> FrameTimes {
        FrameTimes { times: (0..n).map(|i| i as f64 / fps).collect(), rate: fps, source: TimeSource::Rate }
    }

    /// Each frame's own time; they must be finite and strictly increasing.
    pub fn from_timestamps(times: Vec<f64>) -> Result<FrameTimes, TimesError> {
        if times.iter().any(|t| !t.is_finite()) || times.windows(2).any(|w| w[1] <= w[0]) {
            return Err(TimesError("timestamps must be finite and strictly increasing".into()));
        }
        let rate = match (times.first(), times.last()) {
            (Some(a), Some(b)) if times.len() > 1 => (times.len() - 1) as f64 / (b - a),
            _ => f64::NAN,
        };
        Ok(FrameTimes { times, rate, source: TimeSource::Timestamps })
    }

    /// A stream's timestamps, which the protocol gives in seconds since the phrase started
    /// (`X-Timestamp`), the log's clock: kept as they are, so a camera that started late keeps
    /// its late first frame. A first timestamp more than `PHRASE_CLOCK_SLACK_S` from 0 is on
    /// another clock (a camera's running count, an epoch): then the frames are counted from the
    /// first one, as the phrase's start. They must be finite and strictly increasing.
    pub fn from_stream_timestamps(times: Vec<f64>) -> Result<FrameTimes, TimesError> {
        let shift = match times.first() {
            Some(&first) if first.is_finite() && first.abs() > PHRASE_CLOCK_SLACK_S => first,
            _ => 0.0,
        };
        FrameTimes::from_timestamps(times.into_iter().map(|t| t - shift).collect())
    }

    /// `n` frames of a recorded phrase, placed on the log's clock. Cameras run at a standard
    /// rate, and the video ends with the recording but may start a little late (or early): on
    /// the recorded phrases the frame count is 15.07 × span + 0.05 for the 2025 set-up and
    /// 29.35 × span − 6.0 for the 2026 one (a 30 fps camera starting ~0.2 s late; a 30 fps
    /// video anchored at the start would end before the lights in the long phrases). So the
    /// rate is the one of [`NOMINAL_RATES`] whose video length `n / rate` is nearest the span
    /// (start to `Phrase recording ended`, else the last event), and the last frame is one
    /// frame before the end: frame i at end − (n − i) / rate. Spreading the frames over the
    /// span instead read the 30 fps phrases as 22–29 fps, stretching short ones by up to a
    /// third and shifting their frames against the lights. When no standard rate is within
    /// `RATE_TOLERANCE_S` (or a quarter of the span) of the span, the frames are spread evenly
    /// over it as before: rate = n / span, frame i at start + i / rate.
    pub fn estimate(n: usize, log: &PhraseLog) -> FrameTimes {
        let span = log.span();
        let end = log.start + span;
        let off = |rate: f64| (n as f64 / rate - span).abs();
        let nominal = NOMINAL_RATES
            .iter()
            .copied()
            .min_by(|a, b| off(*a).total_cmp(&off(*b)))
            .filter(|&r| span > 0.0 && n > 0 && off(r) <= RATE_TOLERANCE_S.max(0.25 * span));
        if let Some(rate) = nominal {
            let times = (0..n).map(|i| end - (n - i) as f64 / rate).collect();
            return FrameTimes { times, rate, source: TimeSource::Estimated };
        }
        let rate = if span > 0.0 { n as f64 / span } else { f64::NAN };
        let times = if rate.is_finite() {
            (0..n).map(|i| log.start + i as f64 / rate).collect()
        } else {
            (0..n).map(|i| log.start + i as f64 / crate::signal::LOG_FPS).collect()
        };
        FrameTimes { times, rate, source: TimeSource::Estimated }
    }

    /// The frame times.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Frames per second (given, estimated, or over the timestamps).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Where the times came from.
    pub fn source(&self) -> TimeSource {
        self.source
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True with no frames.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::events::parse_log;
    use crate::signal::events::tests::LOG;


    fn approx(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }


    #[test]
    fn frame_times_from_rate_timestamps_and_the_log() {
        let log = parse_log(LOG).unwrap();
        let est = FrameTimes::estimate(120, &log);
        assert!(approx(est.rate(), 30.0, 1e-12));
        assert!(approx(est.times()[30], 1.0, 1e-12));
        assert_eq!(est.source(), TimeSource::Estimated);
        // A 30 fps camera that started 0.25 s late: 34 frames over a 1.38 s span are 30 fps,
        // not 24.6, and the last frame is one frame before the end.
        let late = PhraseLog { end: Some(1.38), ..log.clone() };
        let est = FrameTimes::estimate(34, &late);
        assert_eq!(est.rate(), 30.0);
        assert!(approx(est.times()[33], 1.38 - 1.0 / 30.0, 1e-12) && approx(est.times()[0], 1.38 - 34.0 / 30.0, 1e-12));
        // No standard rate near: spread over the span as before.
        let long = PhraseLog { end: Some(20.0), ..log.clone() };
        assert!(approx(FrameTimes::estimate(60, &long).rate(), 3.0, 1e-12));
        assert!(approx(FrameTimes::from_rate(15.0, 4).times()[3], 0.2, 1e-12));
        // A stream's times are on the phrase's clock: a late first frame stays late; times on
        // another clock (far from 0) are counted from the first frame.
        let late = FrameTimes::from_stream_timestamps(vec![0.2, 0.25, 0.3]).unwrap();
        assert_eq!(late.times(), &[0.2, 0.25, 0.3]);
        assert_eq!(late.source(), TimeSource::Timestamps);
        let epoch = FrameTimes::from_stream_timestamps(vec![1_764_800_000.5, 1_764_800_000.75]).unwrap();
        assert_eq!(epoch.times(), &[0.0, 0.25]);
        assert!(FrameTimes::from_stream_timestamps(vec![0.3, 0.2]).is_err());
        let ts = FrameTimes::from_timestamps(vec![0.0, 0.1, 0.3]).unwrap();
        assert!(approx(ts.rate(), 2.0 / 0.3, 1e-12));
        assert!(FrameTimes::from_timestamps(vec![0.0, 0.0]).is_err());
    }
}
