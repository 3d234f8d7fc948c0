//! The keypoints workbook: the legacy's `.xlsx` of normalised keypoints (sheets `Left_X`,
//! `Left_Y`, `Right_X`, `Right_Y`; columns `0`..`16`; one row per frame; empty cells for NaN),
//! written for each phrase and read back by `ai-referee decide --keypoints`.

use std::path::Path;

use calamine::{open_workbook_auto, Data, Reader};
use rust_xlsxwriter::Workbook;

use crate::analysis::kinematics::{Keypoints, Row};
use crate::analysis::tracker::KEYPOINTS;

/// Sheet names, in the order the legacy wrote them.
const SHEETS: [&str; 4] = ["Left_X", "Left_Y", "Right_X", "Right_Y"];

/// Why a workbook could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    /// Writing failed.
    #[error("cannot write the keypoints workbook: {0}")]
    Write(#[from] rust_xlsxwriter::XlsxError),
    /// The file could not be opened as a spreadsheet.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A sheet is missing or malformed.
    #[error("{0}")]
    Shape(String),
}

/// Writes the four sheets to `path`.
pub fn write(path: &Path, keypoints: &Keypoints) -> Result<(), WorkbookError> {
    let mut book = Workbook::new();
    for (name, rows) in SHEETS.iter().zip(sheets(keypoints)) {
        let sheet = book.add_worksheet().set_name(*name)?;
        for k in 0..KEYPOINTS {
            sheet.write_string(0, k as u16, k.to_string())?;
        }
        for (r, row) in rows.iter().enumerate() {
            for (k, v) in row.iter().enumerate() {
                if v.is_finite() {
                    sheet.write_number(r as u32 + 1, k as u16, *v)?;
                }
            }
        }
    }
    book.save(path)?;
    Ok(())
}

fn sheets(k: &Keypoints) -> [&Vec<Row>; 4] {
    [&k.left_x, &k.left_y, &k.right_x, &k.right_y]
}

/// Reads a keypoints workbook: sheets `Left_X`… or `left_x`…, columns `0`..`16` or
/// `kp_0`..`kp_16` (any order), empty or non-numeric cells as NaN.
pub fn read(path: &Path) -> Result<Keypoints, WorkbookError> {
    let read_err = |reason: String| WorkbookError::Read { path: path.display().to_string(), reason };
    let mut book = open_workbook_auto(path).map_err(|e| read_err(e.to_string()))?;
    let names = book.sheet_names();
    let mut out: Vec<Vec<Row>> = Vec::new();
    for wanted in SHEETS {
        let name = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| WorkbookError::Shape(format!("{} has no sheet {wanted}", path.display())))?
            .clone();
        let range = book.worksheet_range(&name).map_err(|e| read_err(e.to_string()))?;
        let mut rows = range.rows();
        let header = rows.next().ok_or_else(|| WorkbookError::Shape(format!("sheet {name} is empty")))?;
        let mut columns = [None; KEYPOINTS];
        for (c, cell) in header.iter().enumerate() {
            if let Some(k) = column_keypoint(cell) {
                columns[k] = Some(c);
            }
        }
        if let Some(k) = columns.iter().position(Option::is_none) {
            return Err(WorkbookError::Shape(format!("sheet {name} has no column {k} (or kp_{k})")));
        }
        let rows: Vec<Row> = rows
            .map(|cells| {
                let mut row = [f64::NAN; KEYPOINTS];
                for (k, c) in columns.iter().enumerate() {
                    row[k] = cells.get(c.unwrap_or(usize::MAX)).and_then(number).unwrap_or(f64::NAN);
                }
                row
            })
            .collect();
        out.push(rows);
    }
    let lengths: Vec<usize> = out.iter().map(Vec::len).collect();
    if lengths.iter().any(|&n| n != lengths[0]) {
        return Err(WorkbookError::Shape(format!("sheets have different numbers of frames: {lengths:?}")));
    }
    let mut it = out.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(Keypoints { left_x: next(), left_y: next(), right_x: next(), right_y: next() })
}

fn column_keypoint(cell: &Data) -> Option<usize> {
    let text = match cell {
        Data::String(s) => s.trim().trim_start_matches("kp_").to_owned(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 => (*f as i64).to_string(),
        _ => return None,
    };
    text.parse::<usize>().ok().filter(|&k| k < KEYPOINTS)
}

fn number(cell: &Data) -> Option<f64> {
    match cell {
        Data::Float(f) => Some(*f),
        Data::Int(i) => Some(*i as f64),
        Data::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_values_and_nans() {
        let mut row = [f64::NAN; KEYPOINTS];
        row[16] = 3.1175196170806885;
        row[0] = -0.5;
        let k = Keypoints { left_x: vec![row, [1.0; KEYPOINTS]], left_y: vec![row; 2], right_x: vec![row; 2], right_y: vec![row; 2] };
        let path = std::env::temp_dir().join(format!("workbook-test-{}.xlsx", std::process::id()));
        write(&path, &k).unwrap();
        let back = read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.frames(), 2);
        assert_eq!(back.left_x[0][16], 3.1175196170806885);
        assert_eq!(back.left_x[0][0], -0.5);
        assert!(back.left_x[0][1].is_nan());
        assert_eq!(back.left_x[1], [1.0; KEYPOINTS]);
    }
}
