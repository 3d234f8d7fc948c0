//! The `v2` referee engine: who had been advancing when the lights came on, on a true time axis.
//!
//! Beside the legacy rules (kept exact in `decision`), `v2` works in seconds, never in frames:
//! frame times come from the stream's timestamps, the video's rate, or (recorded phrases) the
//! standard rate that fits the frame count to the log's recording span, the last frame at its
//! end. It reads only the timed event lines of the scoring-box log (`0.000s | …`) and the
//! `Scores ->` line, never the referee's own call.
//!
//! The rule, per fencer, on the hips' forward position (gaps up to 0.4 s filled, Gaussian
//! smoothing of 0.06 s):
//! - `advance`: how long the fencer had been advancing without a break (hips forward faster
//!   than 0.2 c/s), for an advance still going in the last 0.3 s before the first light;
//! - `counter_attack`: the weapon arm already reaching forward (≥ 0.3 c past the front
//!   shoulder) 0.5 s before the light while the fencer was not advancing.
//!
//! score = advance / 0.5 s − 1 (counter-attack); the higher score wins. The ground gained in
//! the last second is reported and explained but does not decide: added to the score it cost
//! agreement (66.7% against 77.1% without, on the 96 recorded phrases), because it mostly
//! repeats the advance and, where the advances tie, points the wrong way. A dead heat (both
//! advancing since the video began, the simultaneous attack of most short phrases) goes to the
//! fencer whose light came second, and when the box gives both lights at once to the one who
//! gained less ground in the last second: how these referees called such phrases more often than
//! not (13 of the 20 with a light order, 8 of the 12 without; the old rule, the first light,
//! agreed 7 of 20). It is the weakest part of the rule, and a dead heat is never sure.
//!
//! The scoring box's blade contacts settle two kinds of call that the hips alone get wrong,
//! read from the log's clock only: a dead heat with a contact 0.08–0.11 s before the first light
//! (a beat: the fencer whose light came first took the blade and hit straight after) goes to
//! the first light; and when, after a contact in the last second, one fencer stopped advancing
//! while the other was still advancing at the light, the one who stopped parried and gets the
//! touch, whatever the advances. Both rules were read off the errors on the 96 recorded phrases
//! (they fire on 8 of them, 5 beats and 3 parries, and agree on all 8, where the rules before
//! agreed on none); they are fencing's own rules (a beat or a parry takes the right of way), but
//! how well they hold beyond those phrases is not yet known, and such calls are never sure. The
//! margin between the two scores gives the confidence; below a fitted margin, with a blade
//! contact in the last second (pose cannot see who parried), with too few frames or with a
//! fencer not seen, the call is marked uncertain. The rule is exactly symmetric (the same
//! function of each fencer's forward coordinate and light) and time-true (every window is in
//! seconds).

use serde::Serialize;

use crate::kinematics::{Keypoints, Row};

/// The front (nearer the opponent) shoulder after the legacy's side swap.
const FRONT_SHOULDER: usize = 6;
/// The weapon hand: point 10, the wrist nearer the opponent after the side swap.
///
/// The legacy's pair swap puts, for each left/right pair, the point nearer the opponent at the
/// even index for *both* fencers (larger x for the left fencer, smaller x for the right one).
/// So 10 is always the front wrist and 9 the back one. The weapon arm is the one held and
/// extended towards the opponent; the free hand is kept behind (foil, épée) or on the hip
/// (sabre), so the front wrist is the weapon hand whichever hand the fencer holds it in. The
/// legacy's blade check reads point 9 for the right fencer: that is the right fencer's back,
/// unarmed hand. `v2` reads point 10 for both.
pub const WEAPON_WRIST: usize = 10;
/// The hips, whose mean is the fencer's position.
const HIPS: [usize; 2] = [11, 12];

/// Longest run of missing frames filled by linear interpolation, in seconds.
pub const MAX_GAP_S: f64 = 0.4;
/// Standard deviation of the Gaussian smoothing, in seconds.
pub const SMOOTH_SIGMA_S: f64 = 0.06;
/// Forward hip speed (c per second) above which a fencer is advancing; below minus it, going back.
pub const ADVANCE_SPEED: f64 = 0.2;
/// A dip under `ADVANCE_SPEED` shorter than this (seconds) does not break an advance: a speed
/// grazing the line for a frame or two is not a stop, and the advance must not depend on
/// whether the frame rate happens to sample the dip.
pub const MIN_BREAK_S: f64 = 0.1;
/// An advance counts if it was still going this long before the first light (seconds).
pub const ADVANCE_RECENT_S: f64 = 0.3;
/// Window for the ground gained before the first light (seconds).
pub const GAIN_WINDOW_S: f64 = 1.0;
/// Window looked at for stops and steps back (seconds).
pub const STEP_BACK_WINDOW_S: f64 = 2.0;
/// How long before the first light the counter-attack check looks (seconds).
pub const COUNTER_LEAD_S: f64 = 0.5;
/// Arm reach (front wrist ahead of the front shoulder, in c) that counts as extended.
pub const COUNTER_REACH: f64 = 0.3;
/// Seconds of advance worth one point of score.
pub const ADVANCE_SCALE_S: f64 = 0.5;
/// Points taken from a fencer who counter-attacked.
pub const COUNTER_PENALTY: f64 = 1.0;
/// A blade contact this long before the first light (or up to the last light) makes the call doubtful.
pub const BLADE_WINDOW_S: f64 = 1.0;
/// With such a blade contact, the margin must be this many times the sure margin.
pub const BLADE_MARGIN_FACTOR: f64 = 2.0;
/// The last blade contact before the first light, this many seconds before it (at the least, at
/// the most), is a beat that opened the way for the hit that lit first: the blade travels from the
/// beat to the target in about a tenth of a second. Closer to the light it is the blades crossing
/// on the hits themselves; earlier, an exchange the hit did not follow straight from. In a dead
/// heat the fencer whose light came first after such a contact gets the touch (see [`DecidedBy::Beat`]).
pub const BEAT_WINDOW_S: (f64, f64) = (0.08, 0.11);
/// A fencer whose advance ended at least this long before the first light had stopped; a shorter
/// gap is the advance reaching the light (the crossing is interpolated between frames).
pub const PARRY_STOP_S: f64 = 0.05;
/// Fewer frames per second than this cannot show an advance.
pub const MIN_FPS: f64 = 8.0;
/// Score margin at or above which a call is sure: [`fit_sure_margin`] with `SURE_TARGET` on
/// the 96 recorded phrases with a call (frame times from [`FrameTimes::estimate`]) gives
/// 0.399 (a fifth of a second more advance, or a counter-attack); rounded. `ai-referee evaluate
/// --folds 0` reports how that fit does on phrases left out of it (fitted per fold: 0.33–0.40).
pub const DEFAULT_SURE_MARGIN: f64 = 0.4;
/// A phrase whose first light comes within this many seconds of the start is "short".
pub const SHORT_PHRASE_S: f64 = 2.0;
/// How far from the phrase's start (seconds) a stream's first timestamp may be and still be read
/// as on the phrase's clock ([`FrameTimes::from_stream_timestamps`]).
pub const PHRASE_CLOCK_SLACK_S: f64 = 2.0;
/// The video rates a recorded phrase's frame count is matched against ([`FrameTimes::estimate`]).
pub const NOMINAL_RATES: [f64; 3] = [15.0, 30.0, 60.0];
/// How far (seconds) the video length at a standard rate may be from the log's recording span.
pub const RATE_TOLERANCE_S: f64 = 0.6;

/// Which engine decides: the legacy rules (the `/analyze` contract, `Engine::Legacy`) or `v2`.
/// Parsed from `legacy` / `v2` (any case), as `--engine` and `REFEREE_ENGINE` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// The legacy service's rules, exactly.
    #[default]
    Legacy,
    /// This module's engine.
    V2,
}

impl EngineChoice {
    /// `legacy` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Legacy => "legacy",
            EngineChoice::V2 => "v2",
        }
    }
}

impl std::str::FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<EngineChoice, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "legacy" => Ok(EngineChoice::Legacy),
            "v2" => Ok(EngineChoice::V2),
            other => Err(format!("unknown engine {other:?} (available: legacy, v2)")),
        }
    }
}

/// Why a log cannot be decided by `v2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// No `HIT:` event line.
    #[error("no hit in the log")]
    NoHit,
    /// The box did not give both lights.
    #[error("Not a double-touch phrase (Fencer 1: {fencer1}, Fencer 2: {fencer2})")]
    NotDoubleTouch {
        /// Fencer 1 (the right fencer).
        fencer1: String,
        /// Fencer 2 (the left fencer).
        fencer2: String,
    },
    /// Frame times that are not finite and increasing, or not one per frame.
    #[error("bad frame times: {0}")]
    BadTimes(String),
}

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
    fn direction(self) -> f64 {
        match self {
            Side::Left => 1.0,
            Side::Right => -1.0,
        }
    }
}

/// What `v2` reads from the scoring-box log: event times in seconds on the log's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhraseLog {
    /// `Phrase recording started` (0 when the log has no such line).
    pub start: f64,
    /// `Phrase recording ended`, if the log says.
    pub end: Option<f64>,
    /// The last timed event.
    pub last_event: f64,
    /// The first `HIT:` line: when the lights came on.
    pub first_light: f64,
    /// The last `HIT:` line.
    pub last_light: f64,
    /// Whose light came on first, when the box says (`Left scores on Right` is the left's).
    pub first_light_side: Option<Side>,
    /// Blade-to-blade contacts.
    pub blade_contacts: Vec<f64>,
}

impl PhraseLog {
    /// Seconds from the start to the first light.
    pub fn time_to_hit(&self) -> f64 {
        self.first_light - self.start
    }

    /// The recording span: start to `Phrase recording ended` (or to the last event).
    pub fn span(&self) -> f64 {
        self.end.unwrap_or(self.last_event) - self.start
    }
}

/// True for the lines the recorder writes about the referee's call: any line naming a
/// winner, any remote-referee line, the broadcast text, and the bracketed `[date time] …`
/// bookkeeping written after the phrase ended (interpretation, upload, compression).
pub fn is_referee_call_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    line.trim_start().starts_with('[')
        || ["winner", "referee", "broadcast:", "abstain"].iter().any(|w| lower.contains(w))
}

/// The log without the referee's call lines (see [`is_referee_call_line`]); every other line
/// is kept as it was, each ending with a newline.
pub fn strip_referee_call(log: &str) -> String {
    log.lines().filter(|l| !is_referee_call_line(l)).flat_map(|l| [l, "\n"]).collect()
}

/// `<digits>.<digits>s |` at the start of a line (after spaces): the event time and the text after `|`.
fn event_line(line: &str) -> Option<(f64, &str)> {
    let s = line.trim_start();
    let int = s.bytes().take_while(u8::is_ascii_digit).count();
    if int == 0 || s.as_bytes().get(int) != Some(&b'.') {
        return None;
    }
    let frac = s[int + 1..].bytes().take_while(u8::is_ascii_digit).count();
    let after = &s[int + 1 + frac..];
    if frac == 0 || !after.starts_with('s') {
        return None;
    }
    let rest = after[1..].trim_start().strip_prefix('|')?;
    Some((s[..int + 1 + frac].parse().ok()?, rest.trim()))
}

/// The upper-cased word after `label` (case-insensitive) on a `Scores ->` line.
fn score_word(line: &str, label: &str) -> Option<String> {
    let at = line.to_ascii_lowercase().find(label)? + label.len();
    let word: String = line[at..].trim_start().chars().take_while(|c| c.is_alphanumeric()).collect();
    (!word.is_empty()).then(|| word.to_uppercase())
}

/// Reads a scoring-box log: the timed event lines and the `Scores ->` line only, after
/// [`strip_referee_call`]. A log whose scores line does not give both fencers `HIT` is refused.
pub fn parse_log(text: &str) -> Result<PhraseLog, V2Error> {
    read_log(text, true)
}

/// Reads a log's timed events as [`parse_log`] does, whatever its scores line says (a single
/// light's log too): for the timeline, never for a right-of-way call.
pub fn parse_events(text: &str) -> Result<PhraseLog, V2Error> {
    read_log(text, false)
}

fn read_log(text: &str, double_touch_only: bool) -> Result<PhraseLog, V2Error> {
    let text = strip_referee_call(text);
    let (mut start, mut end) = (None, None);
    let mut last_event = f64::NEG_INFINITY;
    let mut hits: Vec<(f64, Option<Side>)> = Vec::new();
    let mut blade_contacts = Vec::new();
    let mut scores = None;
    for line in text.lines() {
        if line.trim_start().starts_with("Scores ->") {
            scores = Some((score_word(line, "fencer 1:"), score_word(line, "fencer 2:")));
            continue;
        }
        let Some((t, event)) = event_line(line) else { continue };
        last_event = last_event.max(t);
        if event.contains("Phrase recording started") && start.is_none() {
            start = Some(t);
        } else if event.contains("Phrase recording ended") && end.is_none() {
            end = Some(t);
        } else if event.contains("Blade-to-blade contact") {
            blade_contacts.push(t);
        } else if event.contains("HIT:") {
            let side = if event.contains("Left scores") {
                Some(Side::Left)
            } else if event.contains("Right scores") {
                Some(Side::Right)
            } else {
                None
            };
            hits.push((t, side));
        }
    }
    if let (Some((f1, f2)), true) = (scores, double_touch_only) {
        if f1.as_deref() != Some("HIT") || f2.as_deref() != Some("HIT") {
            let show = |s: Option<String>| s.unwrap_or_else(|| "None".into());
            return Err(V2Error::NotDoubleTouch { fencer1: show(f1), fencer2: show(f2) });
        }
    }
    let first_light = hits.iter().map(|h| h.0).fold(f64::INFINITY, f64::min);
    if !first_light.is_finite() {
        return Err(V2Error::NoHit);
    }
    let last_light = hits.iter().map(|h| h.0).fold(f64::NEG_INFINITY, f64::max);
    let firsts: Vec<Side> = hits.iter().filter(|h| h.0 == first_light).filter_map(|h| h.1).collect();
    let first_light_side = match firsts.as_slice() {
        [one, rest @ ..] if rest.iter().all(|s| s == one) => Some(*one),
        _ => None,
    };
    Ok(PhraseLog {
        start: start.unwrap_or(0.0),
        end,
        last_event,
        first_light,
        last_light,
        first_light_side,
        blade_contacts,
    })
}

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
    pub fn from_timestamps(times: Vec<f64>) -> Result<FrameTimes, V2Error> {
        if times.iter().any(|t| !t.is_finite()) || times.windows(2).any(|w| w[1] <= w[0]) {
            return Err(V2Error::BadTimes("timestamps must be finite and strictly increasing".into()));
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
    pub fn from_stream_timestamps(times: Vec<f64>) -> Result<FrameTimes, V2Error> {
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

/// The numbers behind one fencer's part of the call (positions in c, times in seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FencerFeatures {
    /// How long the fencer had been advancing without a break, for an advance still going
    /// 0.3 s before the first light (0 if none).
    pub advance_s: f64,
    /// How long before the first light the fencer's last advance ended (0: still advancing;
    /// `None`: no advance in the last 2 s).
    pub stopped_before_s: Option<f64>,
    /// How long before the first light the fencer was last going back, within 2 s (`None`: not).
    pub stepped_back_before_s: Option<f64>,
    /// Hips' forward movement over the last second before the first light (c).
    pub gain_last_s: f64,
    /// Forward reach of the weapon wrist past the front shoulder 0.5 s before the first light (c).
    pub arm_reach_early: Option<f64>,
    /// Arm already reaching 0.5 s before the first light while not advancing.
    pub counter_attack: bool,
    /// Fraction of frames in the last second before the first light where the hips were seen.
    pub seen_last_s: f64,
    /// advance / 0.5 s − 1 for a counter-attack.
    pub score: f64,
}

/// What settled the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The scores differ: the longer unbroken advance (less a counter-attack) wins.
    Advance,
    /// A dead heat on the scores: the fencer whose light came on second.
    SecondLight,
    /// A dead heat with both lights at once: the fencer who gained less ground in the last second.
    LessGround,
    /// A dead heat with a blade contact `BEAT_WINDOW_S` before the first light: the fencer whose
    /// light came first took the blade (a beat) and hit straight after (in the recorded phrases:
    /// 8 of the 9 with such a contact and a first light went to it, advance or not; the second-light
    /// rule called all five dead heats among them wrong).
    Beat,
    /// A blade contact in the last second, after which one fencer stopped advancing while the
    /// other was still advancing at the light: the one who stopped parried and the other came
    /// onto the parry, whoever advanced longer (3 of 3 in the recorded phrases).
    Parry,
    /// Only one light came on: the touch is the lit fencer's, with no right of way to weigh
    /// (see `single_light`).
    SingleLight,
}

impl DecidedBy {
    /// True for the calls settled after the advances came out level (light order, ground, beat).
    pub fn is_dead_heat(self) -> bool {
        matches!(self, DecidedBy::SecondLight | DecidedBy::LessGround | DecidedBy::Beat)
    }
}

/// `v2`'s call on a double touch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct V2Decision {
    /// `left` or `right`.
    pub winner: String,
    /// 0.5 (a coin flip) to 1.
    pub confidence: f64,
    /// True where this call should not be trusted (see `doubts`).
    pub uncertain: bool,
    /// The call in a referee's words.
    pub explanation: String,
    /// Why the call is uncertain (empty when sure).
    pub doubts: Vec<String>,
    /// Left score minus right score.
    pub margin: f64,
    /// What settled the call: the advance, or in a dead heat the light order or the ground.
    pub decided_by: DecidedBy,
    /// When the first light came on (seconds on the log's clock).
    pub first_light: f64,
    /// The last frame's time (seconds on the log's clock).
    pub last_frame_time: Option<f64>,
    /// Frames per second used.
    pub frame_rate: f64,
    /// Where the frame times came from.
    pub time_source: TimeSource,
    /// Seconds from the nearest blade contact to the first light (negative: after it), if one
    /// falls in the doubtful window.
    pub blade_contact_before_s: Option<f64>,
    /// Seconds from the last blade contact in the second up to the first light to it, if any.
    pub last_contact_before_s: Option<f64>,
    /// The left fencer's numbers.
    pub left: FencerFeatures,
    /// The right fencer's numbers.
    pub right: FencerFeatures,
}

/// What can be fitted: the margin at or above which a call is sure, and the beat window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct V2Params {
    /// Score margin for a sure call.
    pub sure_margin: f64,
    /// Seconds before the first light (least, most) for the last blade contact to be a beat
    /// (`None`: no beat settles a dead heat).
    pub beat_window: Option<(f64, f64)>,
}

impl Default for V2Params {
    fn default() -> V2Params {
        V2Params { sure_margin: DEFAULT_SURE_MARGIN, beat_window: Some(BEAT_WINDOW_S) }
    }
}

/// Decides a double touch with the default parameters.
pub fn decide(keypoints: &Keypoints, log: &PhraseLog, times: &FrameTimes) -> Result<V2Decision, V2Error> {
    decide_with(keypoints, log, times, &V2Params::default())
}

/// Parses the log (blind to the referee's call), estimates frame times from it when `times` is
/// `None`, and decides.
pub fn decide_log(keypoints: &Keypoints, log: &str, times: Option<FrameTimes>) -> Result<V2Decision, V2Error> {
    let log = parse_log(log)?;
    let times = times.unwrap_or_else(|| FrameTimes::estimate(keypoints.frames(), &log));
    decide(keypoints, &log, &times)
}

/// Decides a double touch with the given parameters.
pub fn decide_with(
    keypoints: &Keypoints,
    log: &PhraseLog,
    times: &FrameTimes,
    params: &V2Params,
) -> Result<V2Decision, V2Error> {
    if times.len() != keypoints.frames() {
        return Err(V2Error::BadTimes(format!("{} times for {} frames", times.len(), keypoints.frames())));
    }
    let t = times.times();
    let hit = log.first_light;
    let left = features(&keypoints.left_x, t, hit, Side::Left);
    let right = features(&keypoints.right_x, t, hit, Side::Right);
    let margin = left.score - right.score;
    // Seconds before the first light of each blade contact from a second before it to the last
    // light (negative: after the first light), and those at or before the first light.
    let contacts_around: Vec<f64> =
        log.blade_contacts.iter().filter(|&&b| b >= hit - BLADE_WINDOW_S && b <= log.last_light).map(|&b| hit - b).collect();
    let contacts_before: Vec<f64> = contacts_around.iter().copied().filter(|&c| c >= 0.0).collect();
    let last_contact_before_s = contacts_before.iter().copied().min_by(f64::total_cmp);
    let beat = is_beat(last_contact_before_s, params.beat_window);
    let parry = parried(&left, &right, &contacts_before);
    let (winner, decided_by) = if let Some((parrier, _)) = parry {
        (parrier, DecidedBy::Parry)
    } else if margin > 0.0 {
        (Side::Left, DecidedBy::Advance)
    } else if margin < 0.0 {
        (Side::Right, DecidedBy::Advance)
    } else if let (true, Some(first)) = (beat, log.first_light_side) {
        // A dead heat with a beat just before the lights: the one who hit first after it.
        (first, DecidedBy::Beat)
    } else if let Some(first) = log.first_light_side {
        // A dead heat (both advancing since the video began, as a rule): the second light.
        (first.other(), DecidedBy::SecondLight)
    } else {
        // Both lights at once too: the one who gained less ground. Both tie-breaks are the same
        // function of each fencer, so the rule stays symmetric; right only when all is equal.
        let less = if left.gain_last_s < right.gain_last_s { Side::Left } else { Side::Right };
        (less, DecidedBy::LessGround)
    };

    let blade_contact_before_s = contacts_around.iter().copied().min_by(|a, b| a.abs().total_cmp(&b.abs()));
    let mut decision = V2Decision {
        winner: winner.name().into(),
        confidence: 1.0 / (1.0 + (-margin.abs()).exp()),
        uncertain: false,
        explanation: String::new(),
        doubts: Vec::new(),
        margin,
        decided_by,
        first_light: hit,
        last_frame_time: t.last().copied(),
        frame_rate: times.rate(),
        time_source: times.source(),
        blade_contact_before_s,
        last_contact_before_s,
        left,
        right,
    };
    decision.doubts = decision.doubts_with(params);
    decision.uncertain = !decision.doubts.is_empty();
    let settling_contact = match decided_by {
        DecidedBy::Parry => parry.map(|p| p.1),
        _ => last_contact_before_s,
    };
    decision.explanation = explain(winner, &decision, log.last_light - hit, settling_contact);
    Ok(decision)
}

impl V2Decision {
    /// Who gets the touch, and why, had the beat window been `window`: only a dead heat settled by
    /// the lights (the second light or a beat) can change; everything else is as decided.
    /// Cross-validation refits the window with it.
    pub fn settled_with(&self, window: Option<(f64, f64)>) -> (Side, DecidedBy) {
        let winner = if self.winner == Side::Left.name() { Side::Left } else { Side::Right };
        let first_light = match self.decided_by {
            DecidedBy::Beat => winner,
            DecidedBy::SecondLight => winner.other(),
            other => return (winner, other),
        };
        match is_beat(self.last_contact_before_s, window) {
            true => (first_light, DecidedBy::Beat),
            false => (first_light.other(), DecidedBy::SecondLight),
        }
    }

    /// Why this call would be uncertain under `params` (empty: sure). `decide_with` fills
    /// `doubts` and `uncertain` from it; cross-validation calls it again with other margins.
    pub fn doubts_with(&self, params: &V2Params) -> Vec<String> {
        let mut doubts = Vec::new();
        if self.decided_by == DecidedBy::SingleLight {
            // The box's one light is the call: nothing the pose or the frames show can doubt it.
            return doubts;
        }
        let margin = self.margin.abs();
        match self.decided_by {
            DecidedBy::Advance if margin < params.sure_margin => {
                doubts.push(format!("the two actions are close (margin {margin:.2}, sure from {:.2})", params.sure_margin));
            }
            DecidedBy::Advance | DecidedBy::SingleLight => {}
            DecidedBy::Parry => doubts.push("settled by a parry read from the blade contact and the stop: pose cannot see the blades".into()),
            DecidedBy::SecondLight | DecidedBy::LessGround | DecidedBy::Beat => {
                doubts.push("the advances are level: a dead heat, settled by the lights, a beat or the ground".into());
            }
        }
        let read_the_blade = matches!(self.decided_by, DecidedBy::Beat | DecidedBy::Parry);
        if let (Some(before), false) = (self.blade_contact_before_s, read_the_blade) {
            if margin < BLADE_MARGIN_FACTOR * params.sure_margin {
                let when = if before >= 0.0 { format!("{before:.1} s before") } else { format!("{:.1} s after", -before) };
                doubts.push(format!("blade contact {when} the lights: pose alone cannot tell who parried"));
            }
        }
        if self.frame_rate.is_nan() || self.frame_rate < MIN_FPS {
            doubts.push(format!("only {:.1} frames per second over the recording", self.frame_rate));
        }
        for (side, f) in [(Side::Left, &self.left), (Side::Right, &self.right)] {
            if f.seen_last_s < 0.5 {
                doubts.push(format!("{} seen in only {:.0}% of the last second", side.title(), 100.0 * f.seen_last_s));
            }
        }
        match self.last_frame_time {
            Some(last) if self.first_light - last > MAX_GAP_S => {
                doubts.push(format!("the video ends {:.1} s before the lights", self.first_light - last));
            }
            None => doubts.push("no frames".into()),
            _ => {}
        }
        doubts
    }
}

/// Least share of sure calls that must agree with the referee when fitting the sure margin
/// (0.92 was tried first: cross-validated, its sure calls agreed 89.6% of the time).
pub const SURE_TARGET: f64 = 0.95;
/// Fewest sure calls a fitted margin must leave.
pub const SURE_MIN_CALLS: usize = 10;

/// Fits the sure margin on decided phrases with the referee's call (`agrees`: the decision
/// matched it): the smallest margin at which the calls that would be sure agree at least
/// `target` (e.g. `SURE_TARGET`) of the time, over at least `SURE_MIN_CALLS` of them.
/// Without one, just above the largest margin seen (nothing sure).
pub fn fit_sure_margin(calls: &[(&V2Decision, bool)], target: f64) -> f64 {
    let mut candidates: Vec<f64> = calls.iter().map(|(d, _)| d.margin.abs()).collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    for &m in &candidates {
        let params = V2Params { sure_margin: m, ..V2Params::default() };
        let sure: Vec<bool> = calls.iter().filter(|(d, _)| d.doubts_with(&params).is_empty()).map(|&(_, a)| a).collect();
        if sure.len() >= SURE_MIN_CALLS && sure.iter().filter(|&&a| a).count() as f64 >= target * sure.len() as f64 {
            return m;
        }
    }
    candidates.last().copied().unwrap_or(DEFAULT_SURE_MARGIN) + f64::EPSILON
}

/// True when the last contact before the first light (seconds before it) falls in the beat window.
fn is_beat(last_contact_before_s: Option<f64>, window: Option<(f64, f64)>) -> bool {
    matches!((last_contact_before_s, window), (Some(c), Some((lo, hi))) if c >= lo && c <= hi)
}

/// The fencer who parried and the contact the stop followed (seconds before the first light): a
/// blade contact (`contacts_before`: seconds before the first light, within the last second), after
/// it this fencer's advance ended at least `PARRY_STOP_S` before the light, while the other's
/// advance went on to the light. `None` when not exactly one fits.
fn parried(left: &FencerFeatures, right: &FencerFeatures, contacts_before: &[f64]) -> Option<(Side, f64)> {
    let still_advancing = |f: &FencerFeatures| f.advance_s > 0.0 && f.stopped_before_s.is_some_and(|s| s < PARRY_STOP_S);
    // The latest contact before the fencer's stop, if the fencer stopped.
    let contact_before_stop = |f: &FencerFeatures| {
        let stop = f.stopped_before_s.filter(|&s| s >= PARRY_STOP_S)?;
        contacts_before.iter().copied().filter(|&c| c > stop).min_by(f64::total_cmp)
    };
    match (contact_before_stop(left), contact_before_stop(right)) {
        (Some(c), None) if still_advancing(right) => Some((Side::Left, c)),
        (None, Some(c)) if still_advancing(left) => Some((Side::Right, c)),
        _ => None,
    }
}

/// Fits the beat window on decided phrases with the referee's call (`calls`: the decision and
/// the call, `left`/`right`): of the windows from 0 to 0.3 s before the first light in 0.01 s
/// steps (and none), the one whose calls agree most often, the narrowest of those (then the
/// earliest): the rule is kept to as few phrases as the calls ask for.
pub fn fit_beat_window(calls: &[(&V2Decision, &str)]) -> Option<(f64, f64)> {
    let agree = |w: Option<(f64, f64)>| calls.iter().filter(|(d, call)| d.settled_with(w).0.name() == *call).count();
    let steps: Vec<f64> = (0..=30).map(|i| f64::from(i) / 100.0).collect();
    let windows = std::iter::once(None)
        .chain(steps.iter().flat_map(|&lo| steps.iter().filter(move |&&hi| hi >= lo).map(move |&hi| Some((lo, hi)))));
    let width = |w: Option<(f64, f64)>| w.map_or(-1.0, |(lo, hi)| hi - lo);
    let mut best: Option<(usize, Option<(f64, f64)>)> = None;
    for w in windows {
        let a = agree(w);
        let better = match best {
            None => true,
            Some((b, bw)) => a > b || (a == b && width(w) < width(bw) - 1e-9),
        };
        if better {
            best = Some((a, w));
        }
    }
    best.and_then(|(_, w)| w)
}

/// One fencer's numbers from the x rows, the frame times and the first light's time.
fn features(xs: &[Row], t: &[f64], hit: f64, side: Side) -> FencerFeatures {
    let d = side.direction();
    let (raw_hips, position, speed) = hip_track(xs, t, side);
    let reach_raw: Vec<f64> = xs.iter().map(|r| (r[WEAPON_WRIST] - r[FRONT_SHOULDER]) * d).collect();
    let (reach, _) = local_linear(t, &fill_gaps(t, &reach_raw, MAX_GAP_S), SMOOTH_SIGMA_S);

    let (advance_s, stopped_before_s) = advance(t, &speed, hit);
    let stepped_back_before_s = (0..t.len())
        .rev()
        .filter(|&i| t[i] <= hit && t[i] >= hit - STEP_BACK_WINDOW_S)
        .find(|&i| speed[i] < -ADVANCE_SPEED)
        .map(|i| hit - t[i]);
    let gain_last_s = gain(t, &position, hit).unwrap_or(0.0);
    let early = hit - COUNTER_LEAD_S;
    let arm_reach_early = if t.first().is_some_and(|&t0| early >= t0) { value_at(t, &reach, early) } else { None };
    let speed_early = value_at(t, &speed, early);
    let counter_attack = matches!((arm_reach_early, speed_early), (Some(r), Some(v)) if r >= COUNTER_REACH && v <= ADVANCE_SPEED);
    let window: Vec<usize> = (0..t.len()).filter(|&i| t[i] <= hit && t[i] > hit - GAIN_WINDOW_S).collect();
    let seen_last_s = if window.is_empty() {
        0.0
    } else {
        window.iter().filter(|&&i| !raw_hips[i].is_nan()).count() as f64 / window.len() as f64
    };
    let score = advance_s / ADVANCE_SCALE_S - if counter_attack { COUNTER_PENALTY } else { 0.0 };
    FencerFeatures {
        advance_s,
        stopped_before_s,
        stepped_back_before_s,
        gain_last_s,
        arm_reach_early,
        counter_attack,
        seen_last_s,
        score,
    }
}

/// A fencer's forward hip speed per frame, in normalised units per second (positive: towards
/// the opponent), with gaps filled and smoothed exactly as the rule reads it; NaN where the hips
/// are not seen. `times` are the frames' times (one per row of `keypoints`).
pub fn forward_speed(keypoints: &Keypoints, times: &[f64], side: Side) -> Vec<f64> {
    let xs = match side {
        Side::Left => &keypoints.left_x,
        Side::Right => &keypoints.right_x,
    };
    hip_track(xs, times, side).2
}

/// The hips' forward coordinate as seen (NaN where not), then filled and smoothed: (raw,
/// position, speed per second).
fn hip_track(xs: &[Row], t: &[f64], side: Side) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let raw: Vec<f64> = xs.iter().map(|r| hips(r) * side.direction()).collect();
    let (position, speed) = local_linear(t, &fill_gaps(t, &raw, MAX_GAP_S), SMOOTH_SIGMA_S);
    (raw, position, speed)
}

/// Mean x of the hips seen (NaN when neither is).
fn hips(row: &Row) -> f64 {
    let seen: Vec<f64> = HIPS.iter().map(|&k| row[k]).filter(|v| !v.is_nan()).collect();
    if seen.is_empty() {
        f64::NAN
    } else {
        seen.iter().sum::<f64>() / seen.len() as f64
    }
}

/// Fills runs of NaN between two seen values by linear interpolation in time, when the two
/// seen frames are at most `max_gap` seconds apart. Ends are left missing.
fn fill_gaps(t: &[f64], x: &[f64], max_gap: f64) -> Vec<f64> {
    let mut out = x.to_vec();
    let seen: Vec<usize> = (0..x.len()).filter(|&i| !x[i].is_nan()).collect();
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b > a + 1 && t[b] - t[a] <= max_gap {
            for (i, v) in out.iter_mut().enumerate().take(b).skip(a + 1) {
                let w = (t[i] - t[a]) / (t[b] - t[a]);
                *v = x[a] + w * (x[b] - x[a]);
            }
        }
    }
    out
}

/// Gaussian-weighted local linear fit over time (σ in seconds, cut at 3σ), over the values
/// seen: per frame the fitted value and slope (per second). A straight line comes back exactly,
/// at the ends too (where a plain moving average would bend it). A missing frame stays missing.
fn local_linear(t: &[f64], x: &[f64], sigma: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let mut value = vec![f64::NAN; n];
    let mut slope = vec![f64::NAN; n];
    for i in 0..n {
        if x[i].is_nan() {
            continue;
        }
        let near = |j: &usize| (t[*j] - t[i]).abs() <= 3.0 * sigma;
        let lo = (0..=i).rev().take_while(near).last().unwrap_or(i);
        let (mut sw, mut st, mut sx, mut stt, mut stx) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for j in (lo..n).take_while(near) {
            if !x[j].is_nan() {
                let dt = t[j] - t[i];
                let w = (-0.5 * (dt / sigma).powi(2)).exp();
                sw += w;
                st += w * dt;
                sx += w * x[j];
                stt += w * dt * dt;
                stx += w * dt * x[j];
            }
        }
        let det = sw * stt - st * st;
        if det > 1e-12 * sw * sw * sigma * sigma {
            slope[i] = (sw * stx - st * sx) / det;
            value[i] = (sx - slope[i] * st) / sw;
        } else {
            value[i] = sx / sw;
        }
    }
    (value, slope)
}

/// x at time `at`, linearly between the frames around it (both seen); after the last frame,
/// the last value when it is at most `MAX_GAP_S` old.
fn value_at(t: &[f64], x: &[f64], at: f64) -> Option<f64> {
    let n = t.len();
    if n == 0 || at < t[0] {
        return None;
    }
    if at >= t[n - 1] {
        let v = x[n - 1];
        return (at - t[n - 1] <= MAX_GAP_S && !v.is_nan()).then_some(v);
    }
    let i = t.partition_point(|&ti| ti <= at) - 1;
    let (a, b) = (x[i], x[i + 1]);
    if a.is_nan() || b.is_nan() {
        return None;
    }
    Some(a + (at - t[i]) / (t[i + 1] - t[i]) * (b - a))
}

/// Forward movement over the `GAIN_WINDOW_S` before `hit` (from the first seen frame when the
/// window starts before it).
fn gain(t: &[f64], position: &[f64], hit: f64) -> Option<f64> {
    let end = value_at(t, position, hit)?;
    let from = hit - GAIN_WINDOW_S;
    let start = value_at(t, position, from).or_else(|| {
        (0..t.len()).find(|&i| t[i] >= from && t[i] <= hit && !position[i].is_nan()).map(|i| position[i])
    })?;
    Some(end - start)
}

/// Where the speed crosses `ADVANCE_SPEED` between frames `a` and `b` (linear).
fn crossing(t: &[f64], v: &[f64], a: usize, b: usize) -> f64 {
    let (va, vb) = (v[a], v[b]);
    if va.is_nan() || vb.is_nan() || va == vb {
        return if va.is_nan() || va <= ADVANCE_SPEED { t[b] } else { t[a] };
    }
    let w = ((ADVANCE_SPEED - va) / (vb - va)).clamp(0.0, 1.0);
    t[a] + w * (t[b] - t[a])
}

/// (duration of the advance going on in the last `ADVANCE_RECENT_S` before `hit`, or 0;
/// how long before `hit` the latest advance within `STEP_BACK_WINDOW_S` ended).
fn advance(t: &[f64], v: &[f64], hit: f64) -> (f64, Option<f64>) {
    let advancing = |i: usize| v[i] > ADVANCE_SPEED;
    let Some(end) = (0..t.len()).rev().filter(|&i| t[i] <= hit).find(|&i| advancing(i)) else {
        return (0.0, None);
    };
    let run_start = |mut i: usize| {
        while i > 0 && advancing(i - 1) {
            i -= 1;
        }
        i
    };
    let mut start = run_start(end);
    let mut began = if start == 0 { t[0] } else { crossing(t, v, start - 1, start) };
    // A dip under the speed shorter than `MIN_BREAK_S` is no break: bridge it to the advance before.
    while start > 0 {
        let Some(prev_end) = (0..start).rev().find(|&i| advancing(i)) else { break };
        if began - crossing(t, v, prev_end, prev_end + 1) >= MIN_BREAK_S {
            break;
        }
        start = run_start(prev_end);
        began = if start == 0 { t[0] } else { crossing(t, v, start - 1, start) };
    }
    // Still advancing at the next frame (after the light): the advance went on to the light.
    let ended = match end + 1 < t.len() {
        true if advancing(end + 1) => hit,
        true => crossing(t, v, end, end + 1).min(hit),
        false => t[end].min(hit),
    };
    let before = (hit - ended).max(0.0);
    if before > STEP_BACK_WINDOW_S {
        return (0.0, None);
    }
    // The interpolated end, not the frame's time: the same at any frame rate.
    let duration = if before <= ADVANCE_RECENT_S { (ended - began).max(0.0) } else { 0.0 };
    (duration, Some(before))
}

/// "Left had been advancing for 0.9 s when the lights came on; Right stopped advancing 0.4 s
/// before and stepped back 0.2 s before.", and what settled a dead heat or a parry (`lights_apart`:
/// seconds from the first light to the last; `contact_before`: the blade contact that settled it,
/// seconds before the first light).
fn explain(winner: Side, decision: &V2Decision, lights_apart: f64, contact_before: Option<f64>) -> String {
    let (left, right, doubts) = (&decision.left, &decision.right, &decision.doubts);
    let part = |side: Side, f: &FencerFeatures| -> String {
        let mut s = match f.stopped_before_s {
            Some(b) if f.advance_s > 0.0 && b < 0.05 => {
                format!("{} had been advancing for {:.1} s when the lights came on", side.title(), f.advance_s)
            }
            Some(b) if f.advance_s > 0.0 => {
                format!("{} advanced for {:.1} s and stopped {:.1} s before the lights", side.title(), f.advance_s, b)
            }
            Some(b) => format!("{} stopped advancing {:.1} s before the lights", side.title(), b),
            None => format!("{} was not advancing", side.title()),
        };
        if let Some(b) = f.stepped_back_before_s {
            s.push_str(&format!(" and stepped back {b:.1} s before"));
        }
        if f.counter_attack {
            s.push_str(", with the arm already out and not advancing (a counter-attack)");
        }
        s
    };
    // Ground in percent of the opening distance between the front feet (4 c).
    let pct = |g: f64| 100.0 * g / 4.0;
    let (first, second) = match winner {
        Side::Left => ((Side::Left, left), (Side::Right, right)),
        Side::Right => ((Side::Right, right), (Side::Left, left)),
    };
    let mut text = format!(
        "{} gets the touch. {}; {}. In the last second {} gained {:.0}% of the opening distance, {} {:.0}%.",
        winner.title(),
        part(first.0, first.1),
        part(second.0, second.1),
        first.0.title(),
        pct(first.1.gain_last_s),
        second.0.title(),
        pct(second.1.gain_last_s),
    );
    match decision.decided_by {
        DecidedBy::Advance | DecidedBy::SingleLight => {}
        DecidedBy::Parry => {
            let stop = first.1.stopped_before_s.unwrap_or(f64::NAN);
            text.push_str(&format!(
                " The blades met {:.2} s before the lights, after which {} stopped ({stop:.2} s before them) while {} kept coming: {} parried and {} came onto the parry, so the call goes to {}.",
                contact_before.unwrap_or(f64::NAN),
                winner.title(),
                second.0.title(),
                winner.title(),
                second.0.title(),
                winner.title()
            ));
        }
        DecidedBy::Beat => text.push_str(&format!(
            " The advances are level, and a blade contact {:.2} s before the lights was followed by {}'s light first: {} took the blade (a beat) and hit straight after, so the call goes to {}.",
            contact_before.unwrap_or(f64::NAN),
            winner.title(),
            winner.title(),
            winner.title()
        )),
        DecidedBy::SecondLight => text.push_str(&format!(
            " The advances are level (a simultaneous attack), so the call goes to {}, whose light came on second ({:.2} s after {}'s).",
            winner.title(),
            lights_apart,
            second.0.title()
        )),
        DecidedBy::LessGround => text.push_str(&format!(
            " The advances are level and both lights came on together, so the call goes to {}, who did not rush in as far.",
            winner.title()
        )),
    }
    if !doubts.is_empty() {
        text.push_str(&format!(" Not sure: {}.", doubts.join("; ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "Phrase 1 initialized at 2025-10-20 20:59:20\n\
        Recording started at 2025-10-20 20:59:20\n 0.000s | Phrase recording started\n\
         1.947s | Off-Target: Blade-to-blade contact.\n 3.345s | HIT: Left scores on Right!\n\
         3.368s | Lockout period started (0.200s window)\n 3.528s | HIT: Simultaneous valid hits!\n\
         4.000s | Phrase recording ended\nScores -> Fencer 1: HIT, Fencer 2: HIT\nPhrase ended\n\
        [2025-10-20 20:59:27] Interpretation -> Right Fencer: HIT, Left Fencer: HIT\n\
        [2025-10-20 20:59:27] Manual selection winner: Right Fencer (Green Lamp)\nWinner: Right\n";

    fn approx(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn the_referee_call_is_stripped_and_never_read() {
        let stripped = strip_referee_call(LOG);
        assert!(!stripped.to_lowercase().contains("winner"));
        assert!(stripped.contains("3.528s | HIT: Simultaneous valid hits!\n"));
        assert!(stripped.contains("Scores -> Fencer 1: HIT, Fencer 2: HIT\n"));
        let a = parse_log(LOG).unwrap();
        assert_eq!(a, parse_log(&stripped).unwrap());
        assert_eq!(a, parse_log(&LOG.replace("winner: Right", "winner: Left")).unwrap());
    }

    #[test]
    fn the_log_gives_times_in_seconds() {
        let p = parse_log(LOG).unwrap();
        assert_eq!(p.start, 0.0);
        assert_eq!(p.end, Some(4.0));
        assert_eq!(p.first_light, 3.345);
        assert_eq!(p.last_light, 3.528);
        assert_eq!(p.first_light_side, Some(Side::Left));
        assert_eq!(p.blade_contacts, vec![1.947]);
        assert_eq!(p.span(), 4.0);
        let single = LOG.replace("Fencer 2: HIT", "Fencer 2: MISS");
        assert!(matches!(parse_log(&single), Err(V2Error::NotDoubleTouch { .. })));
        assert_eq!(parse_log(" 0.000s | Phrase recording started\n"), Err(V2Error::NoHit));
        assert_eq!(event_line(" 12.5s | x"), Some((12.5, "x")));
        assert_eq!(event_line("Lockout active (0.130s window)"), None);
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

    #[test]
    fn gaps_are_filled_only_when_short() {
        let t: Vec<f64> = (0..10).map(|i| i as f64 * 0.1).collect();
        let mut x: Vec<f64> = t.iter().map(|&s| 2.0 * s).collect();
        x[2] = f64::NAN;
        x[3] = f64::NAN;
        x[5..=9].fill(f64::NAN);
        x[9] = 1.8;
        let f = fill_gaps(&t, &x, 0.4);
        assert!(approx(f[2], 0.4, 1e-12) && approx(f[3], 0.6, 1e-12));
        assert!(f[5].is_nan(), "a 0.5 s gap stays missing");
    }

    #[test]
    fn the_fit_keeps_a_line_and_speed_is_per_second() {
        for fps in [15.0, 30.0] {
            let t: Vec<f64> = (0..60).map(|i| i as f64 / fps).collect();
            let x: Vec<f64> = t.iter().map(|&s| 1.5 * s + 2.0).collect();
            let (s, v) = local_linear(&t, &x, SMOOTH_SIGMA_S);
            assert!(s.iter().zip(&x).all(|(a, b)| approx(*a, *b, 1e-9)), "a straight line is its own fit, ends too");
            assert!(v.iter().all(|&v| approx(v, 1.5, 1e-9)), "{fps} fps: {v:?}");
            let mut gappy = x.clone();
            gappy[10] = f64::NAN;
            let (s, v) = local_linear(&t, &gappy, SMOOTH_SIGMA_S);
            assert!(s[10].is_nan() && v[10].is_nan() && approx(v[11], 1.5, 1e-9));
        }
    }

    /// A fencer standing until `go`, then advancing at 1 c/s (left's forward is +x).
    fn walker(t: &[f64], go: f64) -> Vec<f64> {
        t.iter().map(|&s| if s < go { 0.0 } else { s - go }).collect()
    }

    #[test]
    fn advance_is_measured_in_seconds_at_any_rate() {
        for fps in [15.0, 30.0, 60.0] {
            let t: Vec<f64> = (0..(3.0 * fps) as usize).map(|i| i as f64 / fps).collect();
            let (_, v) = local_linear(&t, &walker(&t, 1.0), SMOOTH_SIGMA_S);
            let (dur, before) = advance(&t, &v, 2.9);
            assert!(approx(dur, 1.9, 0.1), "{fps} fps: advanced {dur}");
            assert_eq!(before, Some(0.0));
        }
        // Stopped at 1.8 s: no advance counts at 2.9 s, but the stop is reported.
        let t: Vec<f64> = (0..90).map(|i| i as f64 / 30.0).collect();
        let x: Vec<f64> = t.iter().map(|&s| s.clamp(1.0, 1.8)).collect();
        let (_, v) = local_linear(&t, &x, SMOOTH_SIGMA_S);
        let (dur, before) = advance(&t, &v, 2.9);
        assert_eq!(dur, 0.0);
        assert!(approx(before.unwrap(), 1.1, 0.1), "{before:?}");
        // A dip under the speed for a frame is no stop; one of 0.3 s is.
        let mut v = vec![1.0; 90];
        v[45] = 0.1;
        assert!(approx(advance(&t, &v, 2.9).0, 2.9, 1e-9));
        v[40..49].fill(0.1);
        assert!(approx(advance(&t, &v, 2.9).0, 2.9 - 49.0 / 30.0 + 0.1 / 0.9 / 30.0, 0.04), "{:?}", advance(&t, &v, 2.9));
    }

    #[test]
    fn an_advance_still_going_after_the_light_lasts_until_the_light() {
        // The light falls between two frames, both advancing: the advance goes on to the light,
        // whichever frame happens to come last before it (it used to stop at that frame).
        for (fps, hit) in [(15.0, 1.01), (15.0, 1.06), (30.0, 1.01), (30.0, 1.03)] {
            let t: Vec<f64> = (0..(2.0 * fps) as usize).map(|i| i as f64 / fps).collect();
            let v = vec![1.0; t.len()];
            assert_eq!(advance(&t, &v, hit), (hit, Some(0.0)), "{fps} fps, light at {hit}");
        }
    }

    fn row(hip: f64, shoulder: f64, wrist: f64) -> Row {
        let mut r = [f64::NAN; 17];
        r[11] = hip;
        r[12] = hip;
        r[FRONT_SHOULDER] = shoulder;
        r[WEAPON_WRIST] = wrist;
        r
    }

    /// Left advances for the whole phrase; right stands with the arm out (x grows to the right).
    fn phrase(fps: f64) -> (Keypoints, PhraseLog, FrameTimes) {
        let times = FrameTimes::from_rate(fps, (2.0 * fps) as usize);
        let mut k = Keypoints::default();
        for &s in times.times() {
            k.left_x.push(row(1.0 + s, 1.0 + s, 1.2 + s));
            k.left_y.push([1.0; 17]);
            k.right_x.push(row(8.0, 7.9, 7.4));
            k.right_y.push([1.0; 17]);
        }
        let log = PhraseLog {
            start: 0.0,
            end: Some(2.0),
            last_event: 2.0,
            first_light: 1.9,
            last_light: 1.95,
            first_light_side: None,
            blade_contacts: vec![],
        };
        (k, log, times)
    }

    #[test]
    fn the_advancing_fencer_wins_over_a_standing_counter_attack() {
        let (k, log, times) = phrase(30.0);
        let d = decide(&k, &log, &times).unwrap();
        assert_eq!(d.winner, "left");
        assert!(approx(d.left.advance_s, 1.9, 0.05), "{}", d.left.advance_s);
        assert!(approx(d.left.gain_last_s, 1.0, 0.02));
        assert!(d.right.counter_attack && !d.left.counter_attack);
        assert!(approx(d.right.arm_reach_early.unwrap(), 0.5, 1e-9));
        assert!(!d.uncertain, "{:?}", d.doubts);
        assert!(d.confidence > 0.9 && d.confidence < 1.0);
        assert!(d.explanation.starts_with("Left gets the touch. Left had been advancing for 1.9 s"), "{}", d.explanation);
        // A blade contact just before the lights makes a close call doubtful, not a clear one.
        let blade = PhraseLog { blade_contacts: vec![1.7], ..log.clone() };
        let strict = V2Params { sure_margin: d.margin.abs(), ..V2Params::default() };
        let b = decide_with(&k, &blade, &times, &strict).unwrap();
        assert!(b.uncertain && b.doubts.iter().any(|s| s.contains("blade")), "{:?}", b.doubts);
        assert_eq!(b.blade_contact_before_s.map(|s| (s * 10.0).round()), Some(2.0));
    }

    /// Both fencers advancing at 1 c/s for the whole phrase (`right_speed` for the right one),
    /// neither with the arm out: a dead heat on the advance.
    fn simultaneous(right_speed: f64, first_light_side: Option<Side>) -> (Keypoints, PhraseLog, FrameTimes) {
        let (mut k, log, times) = phrase(30.0);
        for (i, &s) in times.times().iter().enumerate() {
            k.left_x[i] = row(1.0 + s, 1.0 + s, 1.1 + s);
            k.right_x[i] = row(8.0 - right_speed * s, 8.0 - right_speed * s, 7.9 - right_speed * s);
        }
        (k, PhraseLog { first_light_side, ..log }, times)
    }

    #[test]
    fn a_dead_heat_goes_to_the_second_light_then_to_the_one_who_rushed_in_less() {
        let (k, log, times) = simultaneous(1.0, Some(Side::Left));
        let d = decide(&k, &log, &times).unwrap();
        assert_eq!((d.margin, d.decided_by, d.winner.as_str()), (0.0, DecidedBy::SecondLight, "right"));
        assert!(d.uncertain, "a dead heat is never sure");
        assert!(d.explanation.contains("so the call goes to Right, whose light came on second (0.05 s after Left's)"), "{}", d.explanation);
        let d = decide(&k, &PhraseLog { first_light_side: Some(Side::Right), ..log.clone() }, &times).unwrap();
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::SecondLight, "left"));
        // Both lights at once: the one who gained less ground in the last second.
        let (k, log, times) = simultaneous(1.5, None);
        let d = decide(&k, &log, &times).unwrap();
        assert_eq!((d.margin, d.decided_by, d.winner.as_str()), (0.0, DecidedBy::LessGround, "left"));
        assert!(d.right.gain_last_s > d.left.gain_last_s);
        assert!(d.explanation.contains("did not rush in as far"), "{}", d.explanation);
        // The ground alone never decides when the advances differ.
        let (mut k, log, times) = simultaneous(3.0, None);
        for (i, &s) in times.times().iter().enumerate() {
            if s < 0.5 {
                k.right_x[i] = row(8.0, 8.0, 7.9);
            } else {
                k.right_x[i] = row(8.0 - 3.0 * (s - 0.5), 8.0 - 3.0 * (s - 0.5), 7.9 - 3.0 * (s - 0.5));
            }
        }
        let d = decide(&k, &log, &times).unwrap();
        assert!(d.right.gain_last_s > 2.0 * d.left.gain_last_s, "{} vs {}", d.right.gain_last_s, d.left.gain_last_s);
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::Advance, "left"));
    }

    #[test]
    fn a_beat_just_before_the_lights_gives_a_dead_heat_to_the_first_light() {
        let (k, log, times) = simultaneous(1.0, Some(Side::Left));
        let beat = PhraseLog { blade_contacts: vec![0.4, log.first_light - 0.098], ..log.clone() };
        let d = decide(&k, &beat, &times).unwrap();
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::Beat, "left"));
        assert!(approx(d.last_contact_before_s.unwrap(), 0.098, 1e-9));
        assert!(d.explanation.contains("a blade contact 0.10 s before the lights was followed by Left's light first: Left took the blade (a beat)"), "{}", d.explanation);
        assert!(d.uncertain && !d.doubts.iter().any(|s| s.contains("who parried")), "{:?}", d.doubts);
        // Refitting the window moves only such dead heats.
        assert_eq!(d.settled_with(None), (Side::Right, DecidedBy::SecondLight));
        assert_eq!(d.settled_with(Some((0.09, 0.1))), (Side::Left, DecidedBy::Beat));
        // A contact on the hits themselves, or one long before, is no beat: the second light.
        for before in [0.03, 0.2] {
            let other = PhraseLog { blade_contacts: vec![log.first_light - before], ..log.clone() };
            let d = decide(&k, &other, &times).unwrap();
            assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::SecondLight, "right"), "contact {before} s before");
            assert_eq!(d.settled_with(Some((0.0, 0.3))), (Side::Left, DecidedBy::Beat));
        }
        // Without a light order there is no first light to give it to.
        let (k, log, times) = simultaneous(1.5, None);
        let d = decide(&k, &PhraseLog { blade_contacts: vec![log.first_light - 0.098], ..log }, &times).unwrap();
        assert_eq!(d.decided_by, DecidedBy::LessGround);
        assert_eq!(d.settled_with(None), (Side::Left, DecidedBy::LessGround));
    }

    #[test]
    fn the_beat_window_is_fitted_narrowest_and_only_when_the_calls_ask_for_it() {
        let (k, log, times) = simultaneous(1.0, Some(Side::Left));
        let beat = PhraseLog { blade_contacts: vec![log.first_light - 0.098], ..log.clone() };
        let d = decide(&k, &beat, &times).unwrap();
        let w = fit_beat_window(&[(&d, "left")]).unwrap();
        assert!(approx(w.0, 0.09, 1e-9) && approx(w.1, 0.1, 1e-9), "{w:?}");
        assert_eq!(fit_beat_window(&[(&d, "right")]), None, "the second light agrees: no window");
        assert_eq!(fit_beat_window(&[]), None);
    }

    #[test]
    fn a_fencer_who_stops_after_a_blade_contact_while_the_other_comes_on_parried() {
        // Right advances all phrase; left advances until 1.7 s and stands (the lights at 1.9 s).
        let (mut k, log, times) = simultaneous(1.0, None);
        for (i, &s) in times.times().iter().enumerate() {
            let x = 1.0 + s.min(1.7);
            k.left_x[i] = row(x, x, x + 0.1);
        }
        let plain = decide(&k, &log, &times).unwrap();
        assert_eq!((plain.decided_by, plain.winner.as_str()), (DecidedBy::Advance, "right"));
        let stop = plain.left.stopped_before_s.unwrap();
        assert!(stop > 0.1 && stop < 0.3, "stopped {stop} s before");

        let parry = PhraseLog { blade_contacts: vec![log.first_light - 0.35], ..log.clone() };
        let d = decide(&k, &parry, &times).unwrap();
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::Parry, "left"));
        assert!(d.margin < 0.0, "right's advance was the longer: {}", d.margin);
        assert!(d.uncertain && d.doubts.iter().any(|s| s.contains("parry")), "{:?}", d.doubts);
        assert!(d.explanation.contains("The blades met 0.35 s before the lights, after which Left stopped"), "{}", d.explanation);
        assert!(d.explanation.contains("Left parried and Right came onto the parry"), "{}", d.explanation);
        assert_eq!(d.settled_with(None), (Side::Left, DecidedBy::Parry), "the beat window never moves a parry");

        // A contact after the stop, or a phrase where the other had stopped too, is no parry.
        let late = PhraseLog { blade_contacts: vec![log.first_light - 0.05], ..log.clone() };
        assert_eq!(decide(&k, &late, &times).unwrap().decided_by, DecidedBy::Advance);
        for (i, &s) in times.times().iter().enumerate() {
            let x = 8.0 - s.min(1.6);
            k.right_x[i] = row(x, x, x - 0.1);
        }
        assert_ne!(decide(&k, &parry, &times).unwrap().decided_by, DecidedBy::Parry);
    }

    #[test]
    fn mirroring_swaps_the_winner_exactly() {
        let (k, log, times) = phrase(15.0);
        let flip = |rows: &[Row]| rows.iter().map(|r| r.map(|v| -v)).collect::<Vec<Row>>();
        let m = Keypoints { left_x: flip(&k.right_x), left_y: k.right_y.clone(), right_x: flip(&k.left_x), right_y: k.left_y.clone() };
        let (a, b) = (decide(&k, &log, &times).unwrap(), decide(&m, &log, &times).unwrap());
        assert_eq!((a.winner.as_str(), b.winner.as_str()), ("left", "right"));
        assert_eq!(a.margin, -b.margin);
        assert_eq!(a.left, b.right);
    }

    #[test]
    fn missing_fencers_and_sparse_frames_are_doubts() {
        let (mut k, log, _) = phrase(30.0);
        let sparse = FrameTimes::from_timestamps((0..60).map(|i| i as f64 * 0.2).collect()).unwrap();
        assert!(decide(&k, &log, &sparse).unwrap().doubts.iter().any(|s| s.contains("frames per second")));
        let times = FrameTimes::from_rate(30.0, 60);
        for r in k.right_x.iter_mut().skip(35) {
            *r = [f64::NAN; 17];
        }
        let d = decide(&k, &log, &times).unwrap();
        assert!(d.uncertain && d.doubts.iter().any(|s| s.starts_with("Right seen in only")), "{:?}", d.doubts);
        assert!(decide(&k, &log, &FrameTimes::from_rate(30.0, 10)).is_err(), "one time per frame");
    }
}
