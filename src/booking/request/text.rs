//! Free text the form sends (notes, insurance member and group numbers, a case manager's name): bounded in
//! length, no control characters (newlines and tabs allowed where a field is multi-line).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub fn parse(raw: &str, max_chars: usize, multi_line: bool) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > max_chars {
            return Err(format!("must be at most {max_chars} characters"));
        }
        let allowed = |c: char| !c.is_control() || (multi_line && matches!(c, '\n' | '\r' | '\t'));
        if !trimmed.chars().all(allowed) {
            return Err("must not contain control characters".into());
        }
        Ok(Text(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_bounded_and_printable() {
        assert_eq!(Text::parse(" Prefers afternoons\nThanks ", 2000, true).unwrap().as_str(), "Prefers afternoons\nThanks");
        assert!(Text::parse("line\nbreak", 100, false).is_err());
        assert!(Text::parse("bell\u{0007}", 100, true).is_err());
        assert!(Text::parse(&"x".repeat(2001), 2000, true).is_err());
        assert!(Text::parse(&"é".repeat(2000), 2000, true).is_ok(), "characters, not bytes");
    }
}
