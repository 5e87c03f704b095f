//! Logs as one JSON object per line (Workers Logs indexes each field): the event's fields, its message,
//! level and time, and the fields of its spans (so `request_id` is on every line of a request). Written
//! through a function, so that workerd gets `console.log` and tests get a buffer. (tracing-wasm would call
//! `performance.mark`, which workerd lacks.)

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

pub struct JsonLines<W, T> {
    write: W,
    time: T,
}

impl<W: Fn(String) + 'static, T: Fn() -> String + 'static> JsonLines<W, T> {
    /// `write` gets each line; `time` gives the timestamp.
    pub fn new(write: W, time: T) -> Self {
        JsonLines { write, time }
    }
}

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

impl<S, W, T> Layer<S> for JsonLines<W, T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Fn(String) + 'static,
    T: Fn() -> String + 'static,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut line = Map::new();
        line.insert("time".into(), (self.time)().into());
        line.insert("level".into(), event.metadata().level().as_str().to_lowercase().into());
        if let Some(scope) = context.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    line.extend(fields.0.clone());
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.extend(fields.0);
        (self.write)(Value::Object(line).to_string());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    use super::*;

    #[test]
    fn span_fields_are_on_every_line_of_the_span() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLines::new(move |line| sink.lock().unwrap().push(line), || "2026-11-24T12:00:00.000Z".into()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "req-9");
            let _entered = span.enter();
            tracing::info!(step = "book_appointment", outcome = "ok", duration_ms = 12u64, "booked");
        });
        let line: Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"time": "2026-11-24T12:00:00.000Z", "level": "info", "request_id": "req-9",
                               "step": "book_appointment", "outcome": "ok", "duration_ms": 12, "message": "booked"})
        );
    }
}
