//! JSON document stores: documents are JSON objects ([`Json`] codec), every top-level field
//! and dotted path of nested objects is indexed by its JSON type ([`json_index`]; an array's
//! elements are each a value of its field), ids come from a field ([`json_id`]), and queries
//! can be written as text ([`parse_filter`], [`parse_sort`]) — what `starling docs` speaks.
//!
//! Numbers are indexed and compared as floats, so integers and floats compare numerically
//! (integers beyond 2^53 lose precision in the index, not in the stored document); `null`
//! fields have no index row (`is null` matches them, and missing fields).

use bytes::Bytes;
use serde_json::Value;

use super::codec::{Codec, CodecError, DocId};
use super::index::IndexSpec;
use super::keys::IndexValue;
use super::query::{Filter, Sort};

/// JSON text as the document bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec<Value> for Json {
    fn encode(&self, doc: &Value) -> Result<Bytes, CodecError> {
        serde_json::to_vec(doc)
            .map(Bytes::from)
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        // serde_json limits nesting (128 levels), so no input can exhaust the stack.
        serde_json::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
    }
}

/// Names the projection [`json_index`] makes (a store indexed by another one is rebuilt).
pub const JSON_PROJECTION: &str = "json-paths/1";

/// Every field and dotted path of a JSON object, indexed by type.
pub fn json_index() -> IndexSpec<Value> {
    IndexSpec::new().projection(JSON_PROJECTION, |doc: &Value, out| {
        if let Value::Object(fields) = doc {
            for (k, v) in fields {
                project(k, v, out);
            }
        }
    })
}

fn project(path: &str, v: &Value, out: &mut Vec<(String, IndexValue)>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push((path.to_owned(), IndexValue::Bool(*b))),
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((path.to_owned(), IndexValue::Float(f)));
            }
        }
        Value::String(s) => out.push((path.to_owned(), IndexValue::Str(s.clone()))),
        Value::Array(items) => {
            for item in items {
                project(path, item, out);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                project(&format!("{path}.{k}"), v, out);
            }
        }
    }
}

/// What is wrong with a JSON document or a query's text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// Not valid JSON.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// A document that is not a JSON object.
    #[error("a document must be a JSON object")]
    NotAnObject,
    /// The id field is missing.
    #[error("the document has no {0:?} field (its id)")]
    MissingId(String),
    /// The id field is not a string or an integer.
    #[error("the id field {0:?} must be a string or an integer")]
    BadId(String),
    /// A `--where` expression that does not parse.
    #[error("bad query at {at}: {why}")]
    Query {
        /// Byte offset in the expression.
        at: usize,
        /// What was expected.
        why: String,
    },
}

/// Parses one JSON document (an object).
pub fn parse_document(text: &str) -> Result<Value, JsonError> {
    let v: Value = serde_json::from_str(text).map_err(|e| JsonError::Syntax(e.to_string()))?;
    if !v.is_object() {
        return Err(JsonError::NotAnObject);
    }
    Ok(v)
}

/// A document's id: the value of its `field`, a string or an integer.
pub fn json_id(doc: &Value, field: &str) -> Result<DocId, JsonError> {
    let Value::Object(fields) = doc else {
        return Err(JsonError::NotAnObject);
    };
    match fields.get(field) {
        None | Some(Value::Null) => Err(JsonError::MissingId(field.to_owned())),
        Some(Value::String(s)) => Ok(DocId::Str(s.clone())),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(DocId::Int)
            .ok_or_else(|| JsonError::BadId(field.to_owned())),
        Some(_) => Err(JsonError::BadId(field.to_owned())),
    }
}

/// An id as JSON (what `get` prints and takes): integers as numbers, strings as strings.
pub fn id_to_json(id: &DocId) -> Value {
    match id {
        DocId::Int(i) => Value::from(*i),
        DocId::Str(s) => Value::from(s.clone()),
        DocId::Bytes(b) => Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

/// An id typed on the command line: an integer if it reads as one, else a string.
pub fn id_from_text(text: &str) -> DocId {
    match text.parse::<i64>() {
        Ok(i) => DocId::Int(i),
        Err(_) => DocId::Str(text.to_owned()),
    }
}

/// Parses `FIELD[:asc|:desc]`.
pub fn parse_sort(text: &str) -> Result<Sort, JsonError> {
    let (field, descending) = match text.rsplit_once(':') {
        Some((f, "desc")) => (f, true),
        Some((f, "asc")) => (f, false),
        Some((_, other)) => {
            return Err(JsonError::Query {
                at: text.len() - other.len(),
                why: format!("sort direction {other:?} (asc or desc)"),
            });
        }
        None => (text, false),
    };
    if field.is_empty() {
        return Err(JsonError::Query {
            at: 0,
            why: "a field name to sort by".into(),
        });
    }
    Ok(Sort {
        field: field.to_owned(),
        descending,
    })
}

/// Parses a `--where` expression: `FIELD OP VALUE` (`OP` one of `= != < <= > >= ^= ~= ~i=`,
/// `VALUE` a JSON literal) or `FIELD is null` / `FIELD is not null`, combined with `and`, `or`,
/// `not` and parentheses (`and` binds tighter than `or`).
pub fn parse_filter(text: &str) -> Result<Filter, JsonError> {
    let mut p = Parser { text, pos: 0 };
    let f = p.or()?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.error("the end of the expression"));
    }
    Ok(f)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, why: &str) -> JsonError {
        JsonError::Query {
            at: self.pos,
            why: format!("expected {why}"),
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    /// Takes the keyword `word` if it is next (as a whole word).
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        // (`get`: the text may have a multi-byte character where the word would end.)
        let ok = rest
            .get(..word.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(word))
            && !rest[word.len()..].starts_with(|c: char| is_field_char(c));
        if ok {
            self.pos += word.len();
        }
        ok
    }

    fn or(&mut self) -> Result<Filter, JsonError> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Filter, JsonError> {
        let mut parts = vec![self.unary()?];
        while self.keyword("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Filter, JsonError> {
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        self.skip_ws();
        if self.rest().starts_with('(') {
            self.pos += 1;
            let inner = self.or()?;
            self.skip_ws();
            if !self.rest().starts_with(')') {
                return Err(self.error("')'"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Filter, JsonError> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !is_field_char(c))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("a field name"));
        }
        let field = self.rest()[..len].to_owned();
        self.pos += len;
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("null") {
                return Err(self.error("null"));
            }
            let f = Filter::IsNull(field);
            return Ok(if negated { Filter::Not(Box::new(f)) } else { f });
        }
        self.skip_ws();
        const OPS: [&str; 9] = ["~i=", "!=", "<=", ">=", "^=", "~=", "=", "<", ">"];
        let Some(op) = OPS.iter().find(|op| self.rest().starts_with(**op)) else {
            return Err(self.error("an operator (= != < <= > >= ^= ~= ~i=) or `is`"));
        };
        self.pos += op.len();
        self.skip_ws();
        let at = self.pos;
        let value = self.literal()?;
        let text = |v: Value| match v {
            Value::String(s) => Ok(s),
            _ => Err(JsonError::Query {
                at,
                why: format!("a string after {op}"),
            }),
        };
        Ok(match *op {
            "^=" => Filter::Prefix {
                field,
                prefix: text(value)?,
                ignore_case: false,
            },
            "~=" | "~i=" => Filter::Contains {
                field,
                needle: text(value)?,
                ignore_case: *op == "~i=",
            },
            _ => {
                let v = match value {
                    Value::Null if *op == "=" => return Ok(Filter::IsNull(field)),
                    Value::Null if *op == "!=" => {
                        return Ok(Filter::Not(Box::new(Filter::IsNull(field))));
                    }
                    Value::Bool(b) => IndexValue::Bool(b),
                    Value::Number(n) => IndexValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                    Value::String(s) => IndexValue::Str(s),
                    _ => {
                        return Err(JsonError::Query {
                            at,
                            why: "a string, number, boolean or null".into(),
                        });
                    }
                };
                match *op {
                    "=" => Filter::Eq(field, v),
                    "!=" => Filter::Ne(field, v),
                    "<" => Filter::Lt(field, v),
                    "<=" => Filter::Le(field, v),
                    ">" => Filter::Gt(field, v),
                    _ => Filter::Ge(field, v),
                }
            }
        })
    }

    /// A JSON literal: a string, a number, true, false or null.
    fn literal(&mut self) -> Result<Value, JsonError> {
        self.skip_ws();
        let rest = self.rest();
        let len = if rest.starts_with('"') {
            // To the closing quote, past escaped characters.
            let mut escaped = false;
            let mut end = None;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            end.ok_or_else(|| self.error("a closing '\"'"))?
        } else {
            rest.find(|c: char| c.is_whitespace() || c == ')')
                .unwrap_or(rest.len())
        };
        let v: Value =
            serde_json::from_str(&rest[..len]).map_err(|_| self.error("a JSON value"))?;
        if v.is_array() || v.is_object() {
            return Err(self.error("a string, number, boolean or null"));
        }
        self.pos += len;
        Ok(v)
    }
}

fn is_field_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '$' | '@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::query::matches;
    use serde_json::json;

    fn eval(doc: &Value, expr: &str) -> bool {
        let spec = json_index();
        let f = parse_filter(expr).unwrap();
        matches(&f, &|field: &str| spec.values_of(doc, field))
    }

    #[test]
    fn paths_arrays_and_types_are_indexed() {
        let doc = json!({"id": 1, "title": "Hello", "tags": ["a", "b"], "meta": {"views": 3, "ok": true}, "n": null});
        let mut values = json_index().values(&doc);
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["id", "meta.ok", "meta.views", "tags", "tags", "title"]
        );
        assert!(
            eval(&doc, "tags = \"b\""),
            "an array matches = by any element"
        );
        assert!(eval(&doc, "meta.views >= 2.5 and meta.ok = true"));
        assert!(
            eval(&doc, "id = 1.0"),
            "numbers compare across int and float"
        );
        assert!(!eval(&doc, "id = \"1\""), "no comparison across types");
        assert!(eval(
            &doc,
            "n is null and missing is null and not title is null"
        ));
        assert!(eval(
            &doc,
            "title ^= \"He\" and title ~i= \"LL\" and not title ~= \"LL\""
        ));
        assert!(eval(&doc, "title = \"x\" or (id < 2 and tags != \"z\")"));
        assert!(eval(&doc, "n = null and title != null"));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = parse_filter("a = 1 or b = 2 and c = 3").unwrap();
        let Filter::Or(parts) = f else {
            panic!("{f:?}")
        };
        assert!(matches!(&parts[1], Filter::And(x) if x.len() == 2));
    }

    #[test]
    fn bad_expressions_say_where() {
        for (expr, at) in [
            ("", 0),
            ("a =", 3),
            ("a == 1", 3),
            ("a = [1]", 4),
            ("(a = 1", 6),
            ("a = 1 b", 6),
            ("a ^= 1", 5),
            ("a is maybe", 5),
            ("a = \"open", 4),
            ("a = 1 x\u{e9}", 6),
            ("n\u{e9}", 3),
        ] {
            match parse_filter(expr) {
                Err(JsonError::Query { at: got, .. }) => assert_eq!(got, at, "{expr:?}"),
                other => panic!("{expr:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn ids_come_from_the_id_field() {
        assert_eq!(json_id(&json!({"id": "x"}), "id"), Ok(DocId::from("x")));
        assert_eq!(json_id(&json!({"id": 7}), "id"), Ok(DocId::from(7)));
        assert_eq!(
            json_id(&json!({"name": 7}), "id"),
            Err(JsonError::MissingId("id".into()))
        );
        assert_eq!(
            json_id(&json!({"id": [1]}), "id"),
            Err(JsonError::BadId("id".into()))
        );
        assert_eq!(parse_document("[1]"), Err(JsonError::NotAnObject));
        assert!(matches!(parse_document("{"), Err(JsonError::Syntax(_))));
        assert_eq!(id_from_text("12"), DocId::from(12));
        assert_eq!(id_from_text("a12"), DocId::from("a12"));
        assert!(parse_sort("likes:desc").unwrap().descending);
        assert!(parse_sort("likes:sideways").is_err());
    }
}
