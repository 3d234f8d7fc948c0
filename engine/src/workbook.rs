//! The legacy keypoints workbook: sheets `Left_X`, `Left_Y`, `Right_X`, `Right_Y`, a header row of columns
//! `0`..`16`, one row per frame of normalised values, empty cells for NaN. Written with rust_xlsxwriter, read
//! back with calamine. Only the xlsx container: no decision logic here.

use std::io::{Cursor, Read, Seek};
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::kinematics::{Keypoints, Row as Frame17};
use crate::tracker::KEYPOINTS as NUM_KEYPOINTS;

/// Sheet names, in the order the legacy wrote them.
pub const SHEETS: [&str; 4] = ["Left_X", "Left_Y", "Right_X", "Right_Y"];

/// Why a workbook could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    /// rust_xlsxwriter refused to write.
    #[error("could not write the keypoints workbook: {0}")]
    Write(#[from] XlsxError),
    /// The file is not a readable xlsx workbook.
    #[error("could not read the keypoints workbook: {0}")]
    Read(#[from] calamine::XlsxError),
    /// Opening the file failed.
    #[error("could not open the keypoints workbook: {0}")]
    Io(#[from] std::io::Error),
    /// A sheet is missing (names are matched case-insensitively).
    #[error("the keypoints workbook has no sheet {0} (expected Left_X, Left_Y, Right_X, Right_Y)")]
    MissingSheet(&'static str),
    /// A keypoint column is missing from a sheet's header row.
    #[error("sheet {sheet} has no column for keypoint {keypoint} (expected a header `{keypoint}` or `kp_{keypoint}`)")]
    MissingColumn {
        /// The sheet.
        sheet: &'static str,
        /// The keypoint index, 0..16.
        keypoint: usize,
    },
    /// A cell holds something other than a number or nothing.
    #[error("sheet {sheet}, row {row}, column {column}: not a number")]
    BadCell {
        /// The sheet.
        sheet: &'static str,
        /// 1-based row, as Excel shows it.
        row: u32,
        /// 1-based column.
        column: u32,
    },
    /// The four sheets do not have the same number of frames.
    #[error("the keypoint sheets have different numbers of frames")]
    LengthMismatch,
}

/// The workbook as xlsx bytes.
pub fn workbook_bytes(kp: &Keypoints) -> Result<Vec<u8>, WorkbookError> {
    let mut book = Workbook::new();
    // Blank-but-formatted cells keep trailing all-NaN frames inside the sheet's declared dimensions, so
    // the frame count survives a round trip; every reader still sees them as empty.
    let blank = Format::new().set_num_format("General");
    for (name, frames) in SHEETS
        .iter()
        .zip([&kp.left_x, &kp.left_y, &kp.right_x, &kp.right_y])
    {
        let sheet = book.add_worksheet();
        sheet.set_name(*name)?;
        for k in 0..NUM_KEYPOINTS {
            sheet.write_number(0, k as u16, k as f64)?;
        }
        for (r, frame) in frames.iter().enumerate() {
            let row = r as u32 + 1;
            for (k, v) in frame.iter().enumerate() {
                if v.is_finite() {
                    sheet.write_number(row, k as u16, *v)?;
                } else {
                    sheet.write_blank(row, k as u16, &blank)?;
                }
            }
        }
    }
    Ok(book.save_to_buffer()?)
}

/// Writes the workbook to `path`.
pub fn write_workbook(kp: &Keypoints, path: &Path) -> Result<(), WorkbookError> {
    std::fs::write(path, workbook_bytes(kp)?)?;
    Ok(())
}

/// Reads a workbook from `path`.
pub fn read_workbook(path: &Path) -> Result<Keypoints, WorkbookError> {
    read_from(std::io::BufReader::new(std::fs::File::open(path)?))
}

/// Reads a workbook from its bytes.
pub fn read_workbook_bytes(bytes: &[u8]) -> Result<Keypoints, WorkbookError> {
    read_from(Cursor::new(bytes))
}

fn read_from<R: Read + Seek>(reader: R) -> Result<Keypoints, WorkbookError> {
    let mut book: Xlsx<R> = Xlsx::new(reader)?;
    let names = book.sheet_names();
    let mut found = Vec::with_capacity(4);
    for want in SHEETS {
        let name = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(want))
            .ok_or(WorkbookError::MissingSheet(want))?;
        found.push((name, want));
    }
    let mut sheets = Vec::with_capacity(4);
    for (name, want) in found {
        sheets.push(read_sheet(&mut book, name, want)?);
    }
    let n = sheets[0].len();
    if sheets.iter().any(|s| s.len() != n) {
        return Err(WorkbookError::LengthMismatch);
    }
    let mut it = sheets.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(Keypoints {
        left_x: next(),
        left_y: next(),
        right_x: next(),
        right_y: next(),
    })
}

/// Header text → keypoint index: `3`, `3.0`, `kp_3`.
fn header_index(cell: &DataRef<'_>) -> Option<usize> {
    let k = match cell {
        DataRef::Int(i) => usize::try_from(*i).ok()?,
        DataRef::Float(f) if f.fract() == 0.0 && *f >= 0.0 => *f as usize,
        DataRef::String(s) => parse_header(s)?,
        DataRef::SharedString(s) => parse_header(s)?,
        _ => return None,
    };
    (k < NUM_KEYPOINTS).then_some(k)
}

fn parse_header(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s
        .strip_prefix("kp_")
        .or_else(|| s.strip_prefix("KP_"))
        .unwrap_or(s);
    digits.parse().ok()
}

/// One sheet: the first non-empty row is the header, every later row up to the declared end is a frame.
fn read_sheet<R: Read + Seek>(
    book: &mut Xlsx<R>,
    name: &str,
    label: &'static str,
) -> Result<Vec<Frame17>, WorkbookError> {
    let mut reader = book.worksheet_cells_reader(name)?;
    let declared_end = reader.dimensions().end.0;
    let mut cells = Vec::new();
    while let Some(cell) = reader.next_cell()? {
        if !matches!(cell.get_value(), DataRef::Empty) {
            let (r, c) = cell.get_position();
            cells.push((r, c, cell.get_value().clone()));
        }
    }
    let Some(header_row) = cells.iter().map(|c| c.0).min() else {
        return Err(WorkbookError::MissingColumn {
            sheet: label,
            keypoint: 0,
        });
    };
    let mut column_of = [None; NUM_KEYPOINTS];
    for (_, c, v) in cells.iter().filter(|c| c.0 == header_row) {
        if let Some(k) = header_index(v) {
            column_of[k].get_or_insert(*c);
        }
    }
    let mut kp_of_column = std::collections::HashMap::new();
    for (k, col) in column_of.iter().enumerate() {
        let col = col.ok_or(WorkbookError::MissingColumn {
            sheet: label,
            keypoint: k,
        })?;
        kp_of_column.insert(col, k);
    }
    let last_row = cells
        .iter()
        .map(|c| c.0)
        .max()
        .unwrap_or(header_row)
        .max(declared_end);
    let mut frames = vec![[f64::NAN; NUM_KEYPOINTS]; (last_row - header_row) as usize];
    for (r, c, v) in cells.iter().filter(|c| c.0 > header_row) {
        let Some(&k) = kp_of_column.get(c) else {
            continue;
        };
        let value = match v {
            DataRef::Float(f) => *f,
            DataRef::Int(i) => *i as f64,
            DataRef::String(s) if s.trim().is_empty() || s.eq_ignore_ascii_case("nan") => f64::NAN,
            _ => {
                return Err(WorkbookError::BadCell {
                    sheet: label,
                    row: r + 1,
                    column: c + 1,
                })
            }
        };
        frames[(r - header_row - 1) as usize][k] = value;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Keypoints {
        let mut kp = Keypoints::default();
        for i in 0..5 {
            let mut f = [0.0; NUM_KEYPOINTS];
            for (k, v) in f.iter_mut().enumerate() {
                *v = i as f64 + k as f64 / 17.0 + 1e-13;
            }
            f[3] = f64::NAN;
            kp.left_x.push(f);
            kp.left_y.push(f.map(|v| v * 2.0));
            kp.right_x.push(f.map(|v| v * 3.0));
            kp.right_y.push(f.map(|v| v * 4.0));
        }
        // Trailing all-NaN frames must survive.
        for _ in 0..2 {
            for sheet in [&mut kp.left_x, &mut kp.left_y, &mut kp.right_x, &mut kp.right_y] {
                sheet.push([f64::NAN; NUM_KEYPOINTS]);
            }
        }
        kp
    }

    fn same(a: &Keypoints, b: &Keypoints) -> bool {
        let eq = |x: &Vec<Frame17>, y: &Vec<Frame17>| {
            x.len() == y.len()
                && x.iter()
                    .flatten()
                    .zip(y.iter().flatten())
                    .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
        };
        eq(&a.left_x, &b.left_x)
            && eq(&a.left_y, &b.left_y)
            && eq(&a.right_x, &b.right_x)
            && eq(&a.right_y, &b.right_y)
    }

    #[test]
    fn round_trip_keeps_values_nan_and_frame_count() {
        let kp = sample();
        let back = read_workbook_bytes(&workbook_bytes(&kp).unwrap()).unwrap();
        assert_eq!(back.frames(), 7);
        assert!(same(&kp, &back));
    }

    #[test]
    fn accepts_lower_case_sheets_and_kp_headers() {
        let mut book = Workbook::new();
        for name in ["left_x", "left_y", "right_x", "right_y"] {
            let s = book.add_worksheet();
            s.set_name(name).unwrap();
            for k in 0..NUM_KEYPOINTS {
                s.write_string(0, k as u16, format!("kp_{k}")).unwrap();
                s.write_number(1, k as u16, k as f64).unwrap();
            }
            s.write_number(2, 5, 1.5).unwrap();
        }
        let kp = read_workbook_bytes(&book.save_to_buffer().unwrap()).unwrap();
        assert_eq!(kp.frames(), 2);
        assert_eq!(kp.right_y[0][16], 16.0);
        assert_eq!(kp.left_x[1][5], 1.5);
        assert!(kp.left_x[1][4].is_nan());
    }

    #[test]
    fn missing_sheet_is_an_error() {
        let mut book = Workbook::new();
        book.add_worksheet().set_name("Left_X").unwrap();
        let err = read_workbook_bytes(&book.save_to_buffer().unwrap()).unwrap_err();
        assert!(
            matches!(err, WorkbookError::MissingSheet("Left_Y")),
            "{err}"
        );
    }
}
