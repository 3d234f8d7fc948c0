//! The legacy fisheye correction: a synthetic camera (focal length max(W, H), centre of the
//! frame, k1 = strength), OpenCV's fisheye undistortion maps computed once per frame size, a
//! linear remap with a black border, then a crop to the area that real pixels reach.

use opencv::core::{self, Mat, Rect, Scalar, Size};
use opencv::prelude::*;
use opencv::{calib3d, imgproc};

/// Fisheye settings (the legacy `REFEREE_FISHEYE_STRENGTH` and `_BALANCE`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FisheyeSettings {
    /// k1 of the synthetic camera (negative undoes barrel distortion).
    pub strength: f64,
    /// Balance for the new camera matrix: 0 keeps only valid pixels, 1 keeps every source pixel.
    pub balance: f64,
}

/// Undistortion maps for one frame size, and the crop that follows the remap.
pub struct Fisheye {
    settings: FisheyeSettings,
    size: Size,
    map1: Mat,
    map2: Mat,
    crop: Rect,
}

impl Fisheye {
    /// Computes the maps and the crop for frames of `width`×`height`.
    pub fn new(settings: FisheyeSettings, width: i32, height: i32) -> opencv::Result<Fisheye> {
        let size = Size::new(width, height);
        let f = width.max(height) as f64;
        let k = Mat::from_slice_2d(&[[f, 0.0, width as f64 / 2.0], [0.0, f, height as f64 / 2.0], [0.0, 0.0, 1.0]])?;
        let d = Mat::from_slice(&[settings.strength, 0.0, 0.0, 0.0])?.try_clone()?;
        let identity = Mat::eye(3, 3, core::CV_64F)?.to_mat()?;
        let mut new_k = Mat::default();
        calib3d::estimate_new_camera_matrix_for_undistort_rectify(
            &k,
            &d,
            size,
            &identity,
            &mut new_k,
            settings.balance,
            Size::default(),
            1.0,
        )?;
        let (mut map1, mut map2) = (Mat::default(), Mat::default());
        calib3d::fisheye_init_undistort_rectify_map(&k, &d, &identity, &new_k, size, core::CV_16SC2, &mut map1, &mut map2)?;
        let white = Mat::new_size_with_default(size, core::CV_8UC1, Scalar::all(255.0))?;
        let mut reached = Mat::default();
        remap(&white, &mut reached, &map1, &map2)?;
        let mut crop = imgproc::bounding_rect(&reached)?;
        if crop.width == 0 || crop.height == 0 {
            crop = Rect::new(0, 0, width, height);
        }
        Ok(Fisheye { settings, size, map1, map2, crop })
    }

    /// The settings these maps were made with.
    pub fn settings(&self) -> FisheyeSettings {
        self.settings
    }

    /// Whether these maps are for frames of this size.
    pub fn fits(&self, width: i32, height: i32) -> bool {
        self.size == Size::new(width, height)
    }

    /// The size of corrected frames: `(width, height)` of the crop.
    pub fn output_size(&self) -> (i32, i32) {
        (self.crop.width, self.crop.height)
    }

    /// Corrects one BGR frame of the size the maps were made for.
    pub fn correct(&self, frame: &Mat) -> opencv::Result<Mat> {
        let mut undistorted = Mat::default();
        remap(frame, &mut undistorted, &self.map1, &self.map2)?;
        Mat::roi(&undistorted, self.crop)?.try_clone()
    }
}

fn remap(src: &Mat, dst: &mut Mat, map1: &Mat, map2: &Mat) -> opencv::Result<()> {
    imgproc::remap(src, dst, map1, map2, imgproc::INTER_LINEAR, core::BORDER_CONSTANT, Scalar::all(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correction_crops_to_the_pixels_the_remap_reaches() {
        let settings = FisheyeSettings { strength: -0.18, balance: 0.0 };
        let fisheye = Fisheye::new(settings, 320, 180).unwrap();
        let (w, h) = fisheye.output_size();
        assert!(w > 0 && w <= 320 && h > 0 && h <= 180, "{w}x{h}");
        let frame = Mat::new_rows_cols_with_default(180, 320, core::CV_8UC3, Scalar::all(200.0)).unwrap();
        let corrected = fisheye.correct(&frame).unwrap();
        assert_eq!((corrected.cols(), corrected.rows()), (w, h));
        assert!(fisheye.fits(320, 180) && !fisheye.fits(640, 360));
        // The centre pixel stays where the optical centre maps, with the source's colour.
        let centre = corrected.at_2d::<core::Vec3b>(h / 2, w / 2).unwrap();
        assert_eq!(centre[0], 200);
    }

    #[test]
    fn zero_strength_is_the_identity() {
        let fisheye = Fisheye::new(FisheyeSettings { strength: 0.0, balance: 0.0 }, 64, 48).unwrap();
        assert_eq!(fisheye.output_size(), (64, 48));
    }
}
