//! The decoder against the ffmpeg command line, bit for bit, on the real demo clip and on clips
//! made here in each codec the piste uses (h264, mpeg4, MJPEG, VP9), with odd sizes and a
//! rotated one. Needs the `ffmpeg` and `ffprobe` programs (scripts/setup.sh installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use referee_video::{VideoDecoder, VideoError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("referee-video-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `ffmpeg -i FILE -f rawvideo -pix_fmt bgr24 -` writes.
fn ffmpeg_bgr24(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "bgr24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Each frame's presentation time as ffprobe reports it.
fn ffprobe_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).map(|l| l.trim().trim_end_matches(',').parse().unwrap()).collect()
}

/// Makes a clip from ffmpeg's test pattern.
fn make_clip(path: &Path, size: &str, rate: u32, frames: u32, codec: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate={rate}"))
        .args(["-frames:v", &frames.to_string()])
        .args(codec)
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "could not make {}", path.display());
}

/// Decodes `path` with the decoder; checks pixels, sizes, times and rate against ffmpeg's.
fn assert_matches_ffmpeg(path: &Path, width: u32, height: u32, fps: f64) -> usize {
    let expected = ffmpeg_bgr24(path);
    let times = ffprobe_times(path);
    let decoder = VideoDecoder::open(path).expect("opens");
    assert!((decoder.fps().expect("a rate") - fps).abs() < 1e-6, "{:?}", decoder.fps());
    let mut got = Vec::with_capacity(expected.len());
    let mut count = 0;
    for (i, frame) in decoder.enumerate() {
        let frame = frame.expect("decodes");
        assert_eq!(frame.index, i);
        assert_eq!((frame.width, frame.height), (width, height), "frame {i}");
        assert_eq!(frame.bgr.len(), (width * height * 3) as usize);
        assert!((frame.time - times[i]).abs() < 1e-6, "frame {i}: {} vs ffprobe {}", frame.time, times[i]);
        got.extend_from_slice(&frame.bgr);
        count += 1;
    }
    assert_eq!(count, times.len(), "{}: frame count", path.display());
    assert_eq!(got.len(), expected.len(), "{}: bytes", path.display());
    assert!(got == expected, "{}: pixels differ from ffmpeg's bgr24", path.display());
    count
}

#[test]
fn the_real_demo_clip_decodes_as_ffmpeg_does_bit_for_bit() {
    let demo = root().join("data/demo.mp4");
    assert!(demo.is_file(), "run scripts/setup.sh: it fetches data/demo.mp4");
    let frames = assert_matches_ffmpeg(&demo, 1768, 994, 30.0);
    assert_eq!(frames, 230);
}

#[test]
fn each_codec_and_odd_sizes_decode_as_ffmpeg_does() {
    let dir = scratch("codecs");
    let cases: [(&str, &str, &[&str], u32, u32); 5] = [
        ("h264.mp4", "1280x720", &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2"], 1280, 720),
        ("mpeg4.mp4", "640x360", &["-c:v", "mpeg4", "-pix_fmt", "yuv420p", "-q:v", "5"], 640, 360),
        ("mjpeg.avi", "641x359", &["-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3"], 641, 359),
        ("vp9.webm", "333x187", &["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-deadline", "realtime", "-cpu-used", "8"], 333, 187),
        ("h264-444-odd.mkv", "321x241", &["-c:v", "libx264", "-pix_fmt", "yuv444p"], 321, 241),
    ];
    for (name, size, codec, w, h) in cases {
        let path = dir.join(name);
        make_clip(&path, size, 15, 12, codec);
        assert_eq!(assert_matches_ffmpeg(&path, w, h, 15.0), 12, "{name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_rotated_clip_comes_out_upright() {
    let dir = scratch("rotated");
    let plain = dir.join("plain.mp4");
    make_clip(&plain, "320x180", 30, 6, &["-c:v", "libx264", "-pix_fmt", "yuv420p"]);
    let rotated = dir.join("rotated.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(&plain)
        .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
        .arg(&rotated)
        .status()
        .unwrap();
    assert!(status.success());
    // A phone held upright: 320×180 stored, 180×320 shown.
    assert_eq!(assert_matches_ffmpeg(&rotated, 180, 320, 30.0), 6);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn what_is_not_a_video_is_refused_with_ffmpegs_reason() {
    let dir = scratch("bad");
    let text = dir.join("phrase.mp4");
    std::fs::write(&text, b"this is not a video at all").unwrap();
    match VideoDecoder::open(&text) {
        Err(VideoError::Unreadable { reason, .. }) => assert!(reason.contains("Invalid data"), "{reason}"),
        other => panic!("expected Unreadable, got {other:?}"),
    }
    match VideoDecoder::open(&dir.join("absent.mp4")) {
        Err(VideoError::Missing(_)) => {}
        other => panic!("expected Missing, got {other:?}"),
    }
    // A clip cut in the middle: the frames before the cut, then an error or a clean end,
    // never a frame made of missing bytes.
    let whole = dir.join("whole.avi");
    make_clip(&whole, "320x240", 15, 10, &["-c:v", "mjpeg"]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.avi");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let frames: Vec<_> = VideoDecoder::open(&cut).expect("opens").collect();
    assert!(frames.iter().filter(|f| f.is_ok()).count() < 10);
    for frame in frames.iter().flatten() {
        assert_eq!(frame.bgr.len(), 320 * 240 * 3);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stopping_early_leaves_no_decoder_running() {
    // A name of its own, so that the decoders of other tests running alongside do not count.
    let dir = scratch("early");
    let clip = dir.join("stopped-early.mp4");
    std::os::unix::fs::symlink(root().join("data/demo.mp4"), &clip).unwrap();
    let running = || {
        let found = Command::new("pgrep").args(["-f", "stopped-early.mp4"]).output().unwrap();
        !String::from_utf8_lossy(&found.stdout).trim().is_empty()
    };
    let mut decoder = VideoDecoder::open(&clip).expect("opens");
    let first = decoder.next().expect("a frame").expect("decodes");
    assert_eq!(first.index, 0);
    assert!(running(), "the decoder runs while frames are read");
    drop(decoder);
    // Killed and reaped on drop: no ffmpeg decodes that file any more.
    assert!(!running(), "ffmpeg still running after the decoder was dropped");
    std::fs::remove_dir_all(&dir).ok();
}
