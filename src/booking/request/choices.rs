//! The booking's closed choices: who pays, and where the visit happens.

use uuid::Uuid;

/// `payerId`: an insurer's id, or "cash-payment" for self pay (stored as payer NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payer {
    Insurer(Uuid),
    CashPayment,
}

pub const CASH_PAYMENT: &str = "cash-payment";

impl Payer {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == CASH_PAYMENT {
            return Ok(Payer::CashPayment);
        }
        Uuid::parse_str(raw)
            .map(Payer::Insurer)
            .map_err(|_| format!("must be a payer id (a UUID) or \"{CASH_PAYMENT}\""))
    }

    /// As `book_appointment` takes it.
    pub fn as_argument(&self) -> String {
        match self {
            Payer::Insurer(id) => id.to_string(),
            Payer::CashPayment => CASH_PAYMENT.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationType {
    Telehealth,
    InPerson,
}

impl LocationType {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "telehealth" => Ok(LocationType::Telehealth),
            "in_person" => Ok(LocationType::InPerson),
            _ => Err("must be \"telehealth\" or \"in_person\"".into()),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            LocationType::Telehealth => "telehealth",
            LocationType::InPerson => "in_person",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payers_are_uuids_or_cash() {
        assert_eq!(Payer::parse("cash-payment").unwrap(), Payer::CashPayment);
        let id = "b2000000-0000-4000-8000-000000000001";
        assert_eq!(Payer::parse(id).unwrap().as_argument(), id);
        for raw in ["", "cash", "Cash-Payment", "b2000000", "' or 1=1 --"] {
            assert!(Payer::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn location_types_are_exact() {
        assert_eq!(LocationType::parse("telehealth").unwrap().as_str(), "telehealth");
        assert_eq!(LocationType::parse("in_person").unwrap().as_str(), "in_person");
        for raw in ["", "Telehealth", "in-person", "office"] {
            assert!(LocationType::parse(raw).is_err(), "{raw:?}");
        }
    }
}
