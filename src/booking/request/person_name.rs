//! A person's first or last name: 1-100 characters of letters of any script, combining marks, spaces,
//! apostrophes, hyphens and periods. No digits, symbols, control or invisible formatting characters (which
//! also keeps SQL-looking text and bidirectional-override tricks out). Kept in Unicode's composed form (NFC), so
//! "José" typed with a combining accent is the same name as "José" typed as one character.

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required".into());
        }
        if trimmed.chars().count() > 100 {
            return Err("must be at most 100 characters".into());
        }
        let allowed = |c: char| c.is_alphabetic() || is_combining_mark(c) || matches!(c, ' ' | '\'' | '’' | '-' | '.');
        if !trimmed.chars().all(allowed) {
            return Err("may contain only letters, spaces, apostrophes, hyphens and periods".into());
        }
        if !trimmed.chars().any(char::is_alphabetic) {
            return Err("must contain a letter".into());
        }
        Ok(PersonName(trimmed.split_whitespace().collect::<Vec<_>>().join(" ").nfc().collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Combining diacritical marks (as in a decomposed "é"), which `char::is_alphabetic` does not cover.
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_name_typed_decomposed_is_the_name_typed_composed() {
        let decomposed = PersonName::parse("Jose\u{301}").unwrap();
        assert_eq!(decomposed, PersonName::parse("Jos\u{e9}").unwrap());
        assert_eq!(decomposed.as_str(), "Jos\u{e9}");
    }

    #[test]
    fn names_of_any_script_are_kept_trimmed() {
        for name in ["Ana", "José", "Zoë", "O'Brien", "Smith-Jones", "李小龙", "Nguyễn", "J. R."] {
            assert_eq!(PersonName::parse(&format!("  {name} ")).unwrap().as_str(), name, "{name}");
        }
        assert_eq!(PersonName::parse("Mary   Ann").unwrap().as_str(), "Mary Ann");
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            "   ",
            "Robert'); DROP TABLE patients;--",
            "<script>alert(1)</script>",
            "Ana\u{202E}evil",
            "Ana\u{200B}",
            "Ana\u{0000}",
            "R2D2",
            "😀",
            "---",
        ] {
            assert!(PersonName::parse(name).is_err(), "{name:?}");
        }
        assert!(PersonName::parse(&"a".repeat(101)).is_err());
    }

    proptest! {
        #[test]
        fn any_name_of_letters_parses(name in "[a-zA-ZÀ-ÖØ-öø-ÿ]{1,40}( [a-zA-ZÀ-ÖØ-öø-ÿ]{1,40})?") {
            let parsed = PersonName::parse(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }

        #[test]
        fn a_name_with_a_digit_or_symbol_never_parses(prefix in "[a-z]{0,10}", bad in "[0-9;<>(){}=*%$#@!]", suffix in "[a-z]{0,10}") {
            let name = format!("{}{}{}", prefix, bad, suffix);
            prop_assert!(PersonName::parse(&name).is_err());
        }
    }
}
