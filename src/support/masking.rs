//! Patient data in logs: never in clear. Enough survives to tell two bookings apart when debugging.

pub const REDACTED: &str = "[redacted]";

/// "jane.doe@example.com" -> "j***@e***.com"
pub fn email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let tld = domain.rsplit_once('.').map(|(_, tld)| tld).unwrap_or("");
            format!("{}***@{}***.{tld}", first_char(local), first_char(domain))
        }
        None => REDACTED.into(),
    }
}

/// "Riley" -> "R***"
pub fn name(name: &str) -> String {
    format!("{}***", first_char(name))
}

/// "+1 555 010 0101" -> "***01"
pub fn phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let last_two: String = digits[digits.len().saturating_sub(2)..].iter().collect();
    format!("***{last_two}")
}

fn first_char(text: &str) -> String {
    text.chars().next().map(String::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_keep_little() {
        assert_eq!(email("jane.doe@example.com"), "j***@e***.com");
        assert_eq!(email("not an email"), REDACTED);
        assert_eq!(name("Riley"), "R***");
        assert_eq!(name("Élodie"), "É***");
        assert_eq!(phone("+1 555 010 0101"), "***01");
        assert_eq!(name(""), "***");
    }

    proptest! {
        #[test]
        fn a_masked_email_never_contains_the_local_part_or_domain_name(local in "[a-z]{4,20}", domain in "[a-z]{4,20}") {
            let masked = email(&format!("{local}@{domain}.com"));
            prop_assert!(!masked.contains(&local) && !masked.contains(&domain));
        }
    }
}
