//! A phone number as people type it: digits with spaces, dots, hyphens, parentheses and a leading "+";
//! 7 to 15 digits (E.164's range), at most 32 characters.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        let allowed = trimmed.char_indices().all(|(i, c)| {
            c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')') || (c == '+' && i == 0)
        });
        if trimmed.len() > 32 || !allowed || !(7..=15).contains(&digits) {
            return Err("must be a phone number of 7 to 15 digits".into());
        }
        Ok(Phone(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_formats_parse() {
        for phone in ["+1 555 010 0101", "(555) 010-0101", "555.010.0101", "+44 20 7946 0958"] {
            assert_eq!(Phone::parse(phone).unwrap().as_str(), phone);
        }
    }

    #[test]
    fn non_numbers_are_refused() {
        for phone in ["", "12345", "call me", "555-0101; drop", "1+555 010 0101", "1234567890123456"] {
            assert!(Phone::parse(phone).is_err(), "{phone:?}");
        }
    }

    proptest! {
        #[test]
        fn ten_digit_numbers_parse(digits in "[0-9]{10}") {
            prop_assert!(Phone::parse(&digits).is_ok());
        }
    }
}
