//! Finding the function a request names and building the SQL that calls it, as PostgREST does: named
//! arguments from the JSON body converted by Postgres through `json_to_record`, or the whole body for a
//! function whose single parameter is an unnamed `json`/`jsonb`.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Map, Value};
use tokio_postgres::GenericClient;

use super::errors::ApiError;

/// A function as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Function {
    pub schema: String,
    pub name: String,
    /// Input parameters in order: (name, SQL type). An unnamed parameter has an empty name.
    pub parameters: Vec<(String, String)>,
    /// How many of the trailing parameters have defaults.
    pub defaults: usize,
    pub returns_set: bool,
    pub returns_void: bool,
}

/// How a response body is shaped.
#[derive(Debug, PartialEq, Eq)]
pub enum Shape {
    /// `void`: 204, no body.
    Empty,
    /// A scalar, json, or one row: the value itself.
    Single,
    /// `SETOF` / `RETURNS TABLE`: an array.
    Set,
}

/// A ready call: its SQL, whether it takes the body (as text, parameter $1), and its response shape.
#[derive(Debug)]
pub struct Call {
    pub sql: String,
    pub takes_body: bool,
    pub shape: Shape,
}

const CATALOG_QUERY: &str = "
select p.proretset,
       p.prorettype = 'pg_catalog.void'::pg_catalog.regtype,
       p.pronargdefaults::int4,
       coalesce(array_agg(a.name order by a.ord) filter (where a.mode in ('i', 'b', 'v')), '{}'),
       coalesce(array_agg(pg_catalog.format_type(a.type, null) order by a.ord)
                filter (where a.mode in ('i', 'b', 'v')), '{}')
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
left join lateral (
  select t.type, t.ord,
         coalesce(p.proargmodes[t.ord], 'i')::text as mode,
         coalesce(p.proargnames[t.ord], '') as name
  from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as t(type, ord)
) a on true
where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'
group by p.oid
order by p.oid";

/// The overloads of `schema.name`.
pub async fn find(client: &impl GenericClient, schema: &str, name: &str) -> Result<Vec<Function>, tokio_postgres::Error> {
    let rows = client.query(CATALOG_QUERY, &[&schema, &name]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let names: Vec<String> = row.get(3);
            let types: Vec<String> = row.get(4);
            Function {
                schema: schema.to_owned(),
                name: name.to_owned(),
                parameters: names.into_iter().zip(types).collect(),
                defaults: row.get::<_, i32>(2) as usize,
                returns_set: row.get(0),
                returns_void: row.get(1),
            }
        })
        .collect())
}

impl Function {
    fn takes_whole_body(&self) -> bool {
        matches!(self.parameters.as_slice(), [(name, ty)] if name.is_empty() && (ty == "json" || ty == "jsonb"))
    }

    /// Whether `keys` name every parameter without a default and nothing else.
    fn accepts(&self, keys: &BTreeSet<&str>) -> bool {
        let required = self.parameters.len() - self.defaults.min(self.parameters.len());
        let known: BTreeSet<&str> = self.parameters.iter().map(|(name, _)| name.as_str()).collect();
        keys.iter().all(|key| known.contains(key))
            && self.parameters[..required].iter().all(|(name, _)| keys.contains(name.as_str()))
    }

    fn shape(&self) -> Shape {
        if self.returns_void {
            Shape::Empty
        } else if self.returns_set {
            Shape::Set
        } else {
            Shape::Single
        }
    }

    /// The SQL calling this function with the request body as $1 (text).
    pub fn call(&self, body: &Value) -> Call {
        let function = format!("{}.{}", quote(&self.schema), quote(&self.name));
        let mut takes_body = true;
        let source = if self.takes_whole_body() {
            format!("{function}($1::text::{}) as x", self.parameters[0].1)
        } else {
            let given: Vec<&(String, String)> = self
                .parameters
                .iter()
                .filter(|(name, _)| body.as_object().is_some_and(|o| o.contains_key(name)))
                .collect();
            if given.is_empty() {
                takes_body = false;
                format!("{function}() as x")
            } else {
                let columns: Vec<String> = given.iter().map(|(n, t)| format!("{} {t}", quote(n))).collect();
                let arguments: Vec<String> = given.iter().map(|(n, _)| format!("{0} := _.{0}", quote(n))).collect();
                format!(
                    "json_to_record($1::text::json) as _({}), lateral {function}({}) as x",
                    columns.join(", "),
                    arguments.join(", ")
                )
            }
        };
        let shape = self.shape();
        let sql = match shape {
            Shape::Empty => format!("select null::text from {source}"),
            Shape::Single => format!("select pg_catalog.to_json(x)::text from {source}"),
            Shape::Set => format!("select coalesce(pg_catalog.json_agg(x), '[]')::text from {source}"),
        };
        Call { sql, takes_body, shape }
    }
}

/// Chooses the overload a body fits, or answers as PostgREST does when none or several fit.
pub fn choose<'a>(overloads: &'a [Function], schema: &str, name: &str, body: &Value) -> Result<&'a Function, ApiError> {
    let empty = Map::new();
    let keys: BTreeSet<&str> = body.as_object().unwrap_or(&empty).keys().map(String::as_str).collect();
    let fitting: Vec<&Function> = overloads
        .iter()
        .filter(|f| f.takes_whole_body() || (body.is_object() && f.accepts(&keys)))
        .collect();
    match fitting.as_slice() {
        [function] => Ok(function),
        [] => {
            let listed = keys.iter().copied().collect::<Vec<_>>().join(", ");
            let (signature, searched) = if keys.is_empty() {
                (format!("{schema}.{name} without parameters"), format!("{schema}.{name} without parameters"))
            } else {
                (format!("{schema}.{name}({listed})"), format!("{schema}.{name} with parameters {listed}"))
            };
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "PGRST202",
                format!("Could not find the function {signature} in the schema cache"),
            )
            .details(format!(
                "Searched for the function {searched} or with a single unnamed json/jsonb parameter, but no \
                 matches were found in the schema cache."
            )))
        }
        several => Err(ApiError::new(
            StatusCode::MULTIPLE_CHOICES,
            "PGRST203",
            format!("Could not choose the best candidate function between: {}", several.len()),
        )),
    }
}

/// A quoted SQL identifier.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function(parameters: &[(&str, &str)], defaults: usize) -> Function {
        Function {
            schema: "public".into(),
            name: "f".into(),
            parameters: parameters.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
            defaults,
            returns_set: false,
            returns_void: false,
        }
    }

    #[test]
    fn a_body_fits_when_it_names_every_required_parameter_and_nothing_else() {
        let f = function(&[("a", "integer"), ("b", "text")], 1);
        assert!(choose(std::slice::from_ref(&f), "public", "f", &json!({"a": 1})).is_ok());
        assert!(choose(std::slice::from_ref(&f), "public", "f", &json!({"a": 1, "b": "x"})).is_ok());
        let missing = choose(std::slice::from_ref(&f), "public", "f", &json!({"b": "x"})).unwrap_err();
        assert_eq!((missing.status, missing.code.as_str()), (StatusCode::NOT_FOUND, "PGRST202"));
        assert!(choose(std::slice::from_ref(&f), "public", "f", &json!({"a": 1, "c": 2})).is_err());
    }

    #[test]
    fn identifiers_are_quoted_and_only_given_arguments_are_passed() {
        let call = function(&[("a\"b", "integer"), ("c", "text")], 1).call(&json!({"a\"b": 1}));
        assert_eq!(
            call.sql,
            "select pg_catalog.to_json(x)::text from json_to_record($1::text::json) as _(\"a\"\"b\" integer), \
             lateral \"public\".\"f\"(\"a\"\"b\" := _.\"a\"\"b\") as x"
        );
    }
}
