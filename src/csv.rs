//! Numeric CSV rows: what the page's points upload and the command line's `--from`/`--points`
//! read. One row of `columns.len()` numbers per line, separated by `,` (also `;`, tabs or
//! spaces); blank lines and `#` comments are ignored; a non-numeric header may come first.
//! Every value must be a finite f32. Errors name the line, the column and what is allowed.

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("this does not look like a CSV text file (it contains binary data)")]
    NotText,
    #[error("no rows: expected lines of '{columns}' numbers (a header line '{columns}' is optional)")]
    Empty { columns: String },
    #[error("line {line}: '{text}' is not {count} numbers: expected '{columns}'")]
    WrongCount { line: usize, text: String, count: usize, columns: String },
    #[error("line {line}: {column} is not a finite number ('{text}'); NaN and infinity are not allowed")]
    NotFinite { line: usize, column: &'static str, text: String },
    #[error("more than {max} rows; the limit is {max}")]
    TooMany { max: usize },
}

/// Parses `text` into rows of `columns.len()` values (flattened, row-major); at most `max_rows`.
pub fn parse_rows(text: &str, columns: &[&'static str], max_rows: usize) -> Result<Vec<f32>, CsvError> {
    if text.contains('\0') || text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(CsvError::NotText);
    }
    let n = columns.len();
    let mut values = Vec::new();
    let mut seen_data = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split([',', ';', '\t', ' ']).map(str::trim).filter(|f| !f.is_empty()).collect();
        let numeric = |f: &str| f.parse::<f64>().is_ok();
        if fields.len() != n || !fields.iter().all(|f| numeric(f)) {
            if !seen_data && !fields.iter().any(|f| numeric(f)) {
                seen_data = true; // a header
                continue;
            }
            return Err(CsvError::WrongCount { line: i + 1, text: truncate(line), count: n, columns: columns.join(",") });
        }
        seen_data = true;
        if values.len() / n >= max_rows {
            return Err(CsvError::TooMany { max: max_rows });
        }
        for (k, f) in fields.iter().enumerate() {
            let v: f64 = f.parse().expect("checked numeric");
            if !v.is_finite() || v.abs() > f32::MAX as f64 {
                return Err(CsvError::NotFinite { line: i + 1, column: columns[k], text: f.to_string() });
            }
            values.push(v as f32);
        }
    }
    if values.is_empty() {
        return Err(CsvError::Empty { columns: columns.join(",") });
    }
    Ok(values)
}

/// `s`, cut to 40 characters for a message.
pub fn truncate(s: &str) -> String {
    if s.chars().count() > 40 { format!("{}…", s.chars().take(40).collect::<String>()) } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_headers_comments_and_errors() {
        assert_eq!(parse_rows("x,y,t\n1,2,0.5\n\n# c\n3;4;1\n", &["x", "y", "t"], 10).unwrap(), vec![1.0, 2.0, 0.5, 3.0, 4.0, 1.0]);
        let e = parse_rows("1,2\n", &["x", "y", "t"], 10).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("3 numbers") && e.contains("x,y,t"), "{e}");
        let e = parse_rows("1,2,inf\n", &["x", "y", "t"], 10).unwrap_err().to_string();
        assert!(e.contains("t is not a finite number"), "{e}");
        assert_eq!(parse_rows("1,2\n3,4\n5,6\n", &["x", "y"], 2), Err(CsvError::TooMany { max: 2 }));
        assert!(parse_rows("x,y\n", &["x", "y"], 2).unwrap_err().to_string().contains("no rows"));
        assert_eq!(parse_rows("1,\u{1}2\n", &["x", "y"], 2), Err(CsvError::NotText));
    }
}
