//! JSON text written by hand (one result line per CLI command, the benchmark's report, the
//! preset list for the page): no serializer on the wasm side for a few flat objects.

/// One JSON object written field by field (keys are trusted literals).
#[derive(Default)]
pub struct JsonLine {
    fields: Vec<String>,
}

impl JsonLine {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.fields.push(format!("\"{key}\":{}", json_string(value)));
        self
    }
    pub fn num(mut self, key: &str, value: f64) -> Self {
        self.fields.push(format!("\"{key}\":{}", json_number(value)));
        self
    }
    /// A value already formatted as JSON (an integer, `null`, a nested object).
    pub fn raw(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.fields.push(format!("\"{key}\":{value}"));
        self
    }
    pub fn finish(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (non-finite values become null).
pub fn json_number(x: f64) -> String {
    if x.is_finite() { format!("{x}") } else { "null".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(json_number(f64::NAN), "null");
    }
}
