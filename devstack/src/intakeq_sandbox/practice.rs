//! The practice as IntakeQ knows it: what `GET /appointments/settings` answers, and the questionnaire templates
//! `GET /questionnaires` lists. Its ids are the IntakeQ ids in `supabase/seed.sql` (a test checks every seeded
//! id is here).

use chrono_tz::Tz;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Practitioner {
    pub id: &'static str,
    pub complete_name: &'static str,
    pub email: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    pub id: &'static str,
    pub name: &'static str,
    pub duration: u32,
    pub price: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Location {
    pub id: &'static str,
    pub name: &'static str,
}

/// An intake questionnaire template: what `POST /intakes/send` names in `QuestionnaireId`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Questionnaire {
    pub id: &'static str,
    pub name: &'static str,
    pub archived: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Settings {
    pub locations: Vec<Location>,
    pub services: Vec<Service>,
    pub practitioners: Vec<Practitioner>,
    /// The practice's time zone. `GET /appointments` reads `startDate`/`endDate` as dates in it, and
    /// `StartDateLocal` is in it. The settings answer does not include it.
    #[serde(skip)]
    pub time_zone: Tz,
    /// The questionnaire templates (`GET /questionnaires`); not part of the settings answer.
    #[serde(skip)]
    pub questionnaires: Vec<Questionnaire>,
}

pub fn demo_practice(time_zone: Tz) -> Settings {
    let practitioner = |id, complete_name, email| Practitioner { id, complete_name, email };
    let service = |id, name, duration, price| Service { id, name, duration, price };
    let location = |id, name| Location { id, name };
    let questionnaire = |id, name| Questionnaire { id, name, archived: false };
    Settings {
        practitioners: vec![
            practitioner("5f1a00000000000000000001", "Ana Rivera, MD", "ana.rivera@example.com"),
            practitioner("5f1a00000000000000000002", "Ben Okafor, DO", "ben.okafor@example.com"),
            practitioner("5f1a00000000000000000003", "Casey Lindqvist, PMHNP", "casey.lindqvist@example.com"),
            practitioner("5f1a00000000000000000004", "Dana Whitfield, MD", "dana.whitfield@example.com"),
        ],
        services: vec![
            service("7c1e0000-0000-4000-8000-000000000001", "Intake (self pay)", 60, 350.0),
            service("7c1e0000-0000-4000-8000-000000000002", "Intake - Beehive Health Plan", 60, 0.0),
            service("7c1e0000-0000-4000-8000-000000000003", "Extended intake - Canyon Care Medicaid", 90, 0.0),
            service("7c1e0000-0000-4000-8000-000000000004", "Intake - Summit Mutual", 60, 0.0),
            service("7c1e0000-0000-4000-8000-000000000005", "Extended intake - Summit Mutual (retired)", 90, 0.0),
            service("7c1e0000-0000-4000-8000-000000000006", "Medication management", 30, 150.0),
        ],
        locations: vec![
            location("1", "Self pay"),
            location("2", "Beehive Health Plan"),
            location("3", "Canyon Care Medicaid"),
            location("4", "Summit Mutual"),
            location("5", "Lakeside Employee Plan"),
        ],
        time_zone,
        questionnaires: vec![
            questionnaire("61a000000000000000000001", "General intake"),
            questionnaire("61a000000000000000000002", "Medicaid intake"),
        ],
    }
}
