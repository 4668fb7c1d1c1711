//! The subset of Drive's `q` search language the emulator understands:
//! `name = 'x'`, `name != 'x'`, `name contains 'x'`, `mimeType = '...'`, `'ID' in parents`,
//! `trashed = false`, `starred = true`, `createdTime > '2024-01-01T00:00:00'`,
//! `appProperties has { key='k' and value='v' }` (also `properties`), combined with
//! `and`, `or`, `not` and parentheses. Anything else is answered 400 "Invalid Value" like Drive.

use crate::errors::ApiError;
use crate::state::{parse_time, FileRec, Inner};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Op(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    InParents(String),
    Cmp(Field, String, Value),
    Has(bool, String, String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field {
    Name,
    MimeType,
    Trashed,
    Starred,
    CreatedTime,
    ModifiedTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Time(i64),
}

fn invalid() -> ApiError {
    ApiError::invalid_value("q")
}

fn lex(s: &str) -> Result<Vec<Tok>, ApiError> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = vec![];
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '\'' || ch == '"' {
            let quote = ch;
            i += 1;
            let mut val = String::new();
            loop {
                if i >= c.len() {
                    return Err(invalid());
                }
                match c[i] {
                    '\\' if i + 1 < c.len() => {
                        val.push(c[i + 1]);
                        i += 2;
                    }
                    ch if ch == quote => {
                        i += 1;
                        break;
                    }
                    ch => {
                        val.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(val));
        } else if ch == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if ch == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if ch == '{' {
            out.push(Tok::LBrace);
            i += 1;
        } else if ch == '}' {
            out.push(Tok::RBrace);
            i += 1;
        } else if "=!<>".contains(ch) {
            let mut op = ch.to_string();
            i += 1;
            if i < c.len() && c[i] == '=' {
                op.push('=');
                i += 1;
            }
            if op == "!" {
                return Err(invalid());
            }
            out.push(Tok::Op(op));
        } else if ch.is_alphanumeric() || ch == '_' || ch == '.' || ch == '-' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || "_.-:".contains(c[i])) {
                i += 1;
            }
            out.push(Tok::Word(c[start..i].iter().collect()));
        } else {
            return Err(invalid());
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x == w)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<(), ApiError> {
        if self.next() == Some(t) {
            Ok(())
        } else {
            Err(invalid())
        }
    }
    fn or(&mut self) -> Result<Expr, ApiError> {
        let mut e = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, ApiError> {
        let mut e = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, ApiError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, ApiError> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Str(id)) => {
                self.expect(Tok::Word("in".into()))?;
                match self.next() {
                    Some(Tok::Word(w)) if w == "parents" => Ok(Expr::InParents(id)),
                    _ => Err(invalid()),
                }
            }
            Some(Tok::Word(field)) => self.term(&field),
            _ => Err(invalid()),
        }
    }
    fn term(&mut self, field: &str) -> Result<Expr, ApiError> {
        if field == "appProperties" || field == "properties" {
            self.expect(Tok::Word("has".into()))?;
            self.expect(Tok::LBrace)?;
            self.expect(Tok::Word("key".into()))?;
            self.expect(Tok::Op("=".into()))?;
            let Some(Tok::Str(key)) = self.next() else {
                return Err(invalid());
            };
            self.expect(Tok::Word("and".into()))?;
            self.expect(Tok::Word("value".into()))?;
            self.expect(Tok::Op("=".into()))?;
            let Some(Tok::Str(value)) = self.next() else {
                return Err(invalid());
            };
            self.expect(Tok::RBrace)?;
            return Ok(Expr::Has(field == "appProperties", key, value));
        }
        let f = match field {
            "name" => Field::Name,
            "mimeType" => Field::MimeType,
            "trashed" => Field::Trashed,
            "starred" => Field::Starred,
            "createdTime" => Field::CreatedTime,
            "modifiedTime" => Field::ModifiedTime,
            _ => return Err(invalid()),
        };
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            Some(Tok::Word(w)) if w == "contains" => w,
            _ => return Err(invalid()),
        };
        let allowed: &[&str] = match f {
            Field::Name | Field::MimeType => &["=", "!=", "contains"],
            Field::Trashed | Field::Starred => &["=", "!="],
            Field::CreatedTime | Field::ModifiedTime => &["=", "!=", "<", "<=", ">", ">="],
        };
        if !allowed.contains(&op.as_str()) {
            return Err(invalid());
        }
        let value = match (f, self.next()) {
            (Field::Trashed | Field::Starred, Some(Tok::Word(w)))
                if w == "true" || w == "false" =>
            {
                Value::Bool(w == "true")
            }
            (Field::CreatedTime | Field::ModifiedTime, Some(Tok::Str(s))) => {
                Value::Time(parse_time(&s).ok_or_else(invalid)?)
            }
            (Field::Name | Field::MimeType, Some(Tok::Str(s))) => Value::Str(s),
            _ => return Err(invalid()),
        };
        Ok(Expr::Cmp(f, op, value))
    }
}

pub fn parse(q: &str) -> Result<Expr, ApiError> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(invalid());
    }
    Ok(e)
}

impl Expr {
    /// Replace the aliases `root` and `appDataFolder` in `in parents` terms by real ids.
    pub fn resolve(&mut self, inner: &mut Inner, client_id: &str) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.resolve(inner, client_id);
                b.resolve(inner, client_id);
            }
            Expr::Not(a) => a.resolve(inner, client_id),
            Expr::InParents(id) => *id = inner.resolve(id, client_id),
            _ => {}
        }
    }

    pub fn matches(&self, f: &FileRec, inner: &Inner) -> bool {
        match self {
            Expr::And(a, b) => a.matches(f, inner) && b.matches(f, inner),
            Expr::Or(a, b) => a.matches(f, inner) || b.matches(f, inner),
            Expr::Not(a) => !a.matches(f, inner),
            Expr::InParents(id) => f.parents.iter().any(|p| p == id),
            Expr::Has(app, key, value) => {
                let map = if *app {
                    &f.app_properties
                } else {
                    &f.properties
                };
                map.get(key) == Some(value)
            }
            Expr::Cmp(field, op, value) => {
                use std::cmp::Ordering;
                let ord: Option<Ordering> = match (field, value) {
                    (Field::Name, Value::Str(s)) if op == "contains" => {
                        return name_contains(&f.name, s)
                    }
                    (Field::MimeType, Value::Str(s)) if op == "contains" => {
                        return f.mime_type.contains(s.as_str())
                    }
                    (Field::Name, Value::Str(s)) => Some(f.name.as_str().cmp(s)),
                    (Field::MimeType, Value::Str(s)) => Some(f.mime_type.as_str().cmp(s)),
                    (Field::Trashed, Value::Bool(b)) => {
                        Some(inner.effectively_trashed(&f.id).cmp(b))
                    }
                    (Field::Starred, Value::Bool(b)) => Some(f.starred.cmp(b)),
                    (Field::CreatedTime, Value::Time(t)) => Some(f.created_ms.cmp(t)),
                    (Field::ModifiedTime, Value::Time(t)) => Some(f.modified_ms.cmp(t)),
                    _ => None,
                };
                let Some(ord) = ord else { return false };
                match op.as_str() {
                    "=" => ord == Ordering::Equal,
                    "!=" => ord != Ordering::Equal,
                    "<" => ord == Ordering::Less,
                    "<=" => ord != Ordering::Greater,
                    ">" => ord == Ordering::Greater,
                    ">=" => ord != Ordering::Less,
                    _ => false,
                }
            }
        }
    }
}

/// Drive's `name contains` is a case-insensitive prefix match on the name or on one of its
/// words: `'Hello'` finds `HelloWorld`, `'World'` does not.
fn name_contains(name: &str, needle: &str) -> bool {
    let name = name.to_lowercase();
    let needle = needle.to_lowercase();
    if needle.is_empty() {
        return true;
    }
    name.match_indices(&needle).any(|(i, _)| {
        i == 0
            || !name[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_subset() {
        let e = parse("name = 'a\\'b' and 'x' in parents and trashed = false").unwrap();
        assert!(matches!(e, Expr::And(_, _)));
        parse("appProperties has { key='kind' and value='backup' } and not name contains 'x'")
            .unwrap();
        parse("(name = 'a' or name = 'b') and createdTime > '2024-01-01T00:00:00'").unwrap();
        assert!(parse("name = ").is_err());
        assert!(parse("fullText contains 'x'").is_err());
        assert!(parse("name = 'a' and").is_err());
        assert!(parse("trashed = 'no'").is_err());
    }

    #[test]
    fn contains_is_word_prefix() {
        assert!(name_contains("HelloWorld", "hello"));
        assert!(!name_contains("HelloWorld", "World"));
        assert!(name_contains("db-2024-01-01.archive", "2024"));
    }
}
