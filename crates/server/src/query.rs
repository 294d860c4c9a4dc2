//! Fleet-index queries: a documented subset of AWS IoT fleet indexing's query syntax, parsed
//! and evaluated over one thing's *index document* ([`index_document`]). Dynamic thing groups
//! (`crate::groups`) and `POST /api/indices/search` (AWS `SearchIndex`) select things with it.
//!
//! Pure: no store, no clock. A query is parsed once ([`Query::parse`]) and evaluated against
//! any number of documents ([`Query::matches`]).
//!
//! ## Syntax (AWS's, the subset Ferrota implements)
//!
//! | form | meaning |
//! |---|---|
//! | `field:value` | equal (strings case-insensitively, as AWS searches; numbers and versions by value: `firmware.version:1.2` matches `1.2.0`) |
//! | `field:val*`, `field:v?l` | wildcard: `*` any run of characters, `?` one character (case-insensitive) |
//! | `field:*` | the field exists |
//! | `field:"a value"` | quoted value (`\"` and `\\` escape inside); `\` escapes one character outside quotes too |
//! | `field < v`, `<=`, `>`, `>=` | ordered comparison (see *Order*) |
//! | `field:[a TO b]`, `field:{a TO b}` | range, `[`/`]` inclusive, `{`/`}` exclusive, mixable (`[a TO b}`); `*` is an open end |
//! | `a AND b`, `a b` | both (AND is the default operator, as in AWS) |
//! | `a OR b` | either; AND binds tighter than OR |
//! | `NOT a` | not |
//! | `( … )` | grouping |
//! | `value` (no field) | matches `thingName` (`tv*` works); `*` alone matches every thing |
//!
//! Keywords (`AND`, `OR`, `NOT`, `TO`) are upper case, as in AWS (Lucene). Field names are case
//! sensitive; values are not.
//!
//! Not implemented (refused, never misread): AWS's `-term` exclusion (write `NOT term`) and
//! field grouping `field:(a OR b)` (write `field:a OR field:b`); geo queries.
//!
//! ## Fields
//!
//! | field | what |
//! |---|---|
//! | `thingName` | the thing's name |
//! | `thingGroupNames` | its static thing groups (a dynamic group is not a field: groups of groups would make membership circular) |
//! | `attributes.<name>` | a thing attribute (`attributePayload`); `<name>` is taken whole, dots included |
//! | `connectivity.connected` | `true` / `false` |
//! | `connectivity.timestamp` | when it was last heard from, epoch **milliseconds** (as AWS's fleet index has it, so an AWS query works unchanged) |
//! | `shadow.reported.<path>` | the reported state of its classic shadow (`shadow.reported.firmware.version`, `shadow.reported.hardwareId`, …) |
//! | `firmware.version` | running firmware version (a *version field*, see *Order*) |
//! | `firmware.bank` | booted bank, `A` or `B` |
//! | `firmware.pendingTrial` | `true` while the image runs on trial |
//! | `firmware.antiRollbackFloor` | anti-rollback floor (a number) |
//! | `hardwareId` | the board's hardware id |
//! | `lastJob.status` | status of its newest job execution (`SUCCEEDED`, `FAILED`, …) |
//! | `lastJob.jobId` | id of its newest job execution |
//!
//! A field not in this list is refused at parse time (AWS would silently match nothing; a
//! dynamic group with a typo would then select nobody, forever, without a word).
//!
//! ## Order (`<`, `<=`, `>`, `>=`, ranges, and `:` equality)
//!
//! Decision, since AWS types fields by an index schema Ferrota does not have:
//! 1. both sides are numbers (a JSON number, or text that reads as a finite decimal number
//!    with at most one dot) → numeric order;
//! 2. else both sides are dotted versions (`1.10.0`, `2.0`, an optional leading `v`; parts
//!    of digits, missing parts are 0) → version order, part by part, so `1.10.0 > 1.9.3`;
//!    a version field (`firmware.version`, `shadow.reported.firmware.version`) compares in
//!    version order as soon as both sides read as versions, even `1.2` against `1.10`, which
//!    rule 1 would read as decimals;
//! 3. else → text order of the lower-cased strings (so a version against a plain word, e.g.
//!    `firmware.version < beta`, compares as text, never as an error).
//!
//! A missing field matches no comparison (and `NOT` of it matches). An array (`thingGroupNames`)
//! matches when any element does.
//!
//! ## Bounds
//!
//! At most [`QUERY_MAX_CHARS`] characters, [`TERMS_MAX`] terms (AWS's documented maximum of
//! terms per query) and [`DEPTH_MAX`] levels of nesting (parentheses and `NOT`). Every input,
//! however malformed, ends in a [`QueryError`] with its position, never a panic (a property
//! test holds it to that).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::Thing;

/// Longest query, in characters. AWS's API reference gives `queryString` only a minimum
/// length (1) and limits leading-wildcard queries to 100 characters; 1,000 keeps every query
/// an operator writes (12 terms of 80 characters) while bounding the parser's work.
pub const QUERY_MAX_CHARS: usize = 1000;

/// Most terms in one query: AWS's fleet-indexing limit ("the maximum number of terms in a
/// query is 12").
pub const TERMS_MAX: usize = 12;

/// Deepest nesting of parentheses and `NOT`: bounds the recursive parser's stack.
pub const DEPTH_MAX: usize = 8;

/// Exact field names a query may use (see the module docs).
pub const FIELDS: &[&str] = &[
    "thingName",
    "thingGroupNames",
    "connectivity.connected",
    "connectivity.timestamp",
    "firmware.version",
    "firmware.bank",
    "firmware.pendingTrial",
    "firmware.antiRollbackFloor",
    "hardwareId",
    "lastJob.status",
    "lastJob.jobId",
];

/// Field prefixes a query may use, each followed by a name or path.
pub const FIELD_PREFIXES: &[&str] = &["attributes.", "shadow.reported."];

/// Fields compared in version order whenever both sides read as versions.
const VERSION_FIELDS: &[&str] = &["firmware.version", "shadow.reported.firmware.version"];

/// A query that cannot be parsed: what is wrong, and where (0-based character offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query error at character {}: {message}", .position + 1)]
pub struct QueryError {
    /// 0-based character offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// An ordered comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// What a term asks of its field.
#[derive(Debug, Clone, PartialEq)]
enum Pred {
    /// Equal (no wildcard) or glob match (with `*`/`?`).
    Match { value: String, glob: bool },
    /// The field exists (`field:*`).
    Exists,
    /// Ordered comparison.
    Cmp(Op, String),
    /// Range: each end with inclusive flag; `None` is open.
    Range {
        lo: Option<(String, bool)>,
        hi: Option<(String, bool)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term { field: String, pred: Pred },
    All,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    expr: Expr,
}

impl Query {
    /// Parses a query (see the module docs for the syntax and bounds).
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() > QUERY_MAX_CHARS {
            return Err(QueryError {
                position: QUERY_MAX_CHARS,
                message: format!(
                    "the query is {} characters long; at most {QUERY_MAX_CHARS}",
                    chars.len()
                ),
            });
        }
        let tokens = lex(&chars)?;
        let mut p = Parser {
            tokens,
            at: 0,
            terms: 0,
            end: chars.len(),
        };
        if p.tokens.is_empty() {
            return Err(p.err(0, "the query is empty"));
        }
        let expr = p.or(0)?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(p.err(t.pos, &format!("unexpected {}", t.kind.describe())));
        }
        Ok(Query { expr })
    }

    /// Whether a thing's index document ([`index_document`]) matches.
    pub fn matches(&self, doc: &Value) -> bool {
        eval(&self.expr, doc)
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Colon,
    Op(Op),
    And,
    Or,
    Not,
    To,
    /// A word; `glob` when it holds an unescaped `*` or `?`.
    Word {
        text: String,
        glob: bool,
    },
    Quoted(String),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::LParen => "'('".into(),
            Kind::RParen => "')'".into(),
            Kind::LBracket => "'['".into(),
            Kind::RBracket => "']'".into(),
            Kind::LBrace => "'{'".into(),
            Kind::RBrace => "'}'".into(),
            Kind::Colon => "':'".into(),
            Kind::Op(o) => format!("'{}'", op_text(*o)),
            Kind::And => "AND".into(),
            Kind::Or => "OR".into(),
            Kind::Not => "NOT".into(),
            Kind::To => "TO".into(),
            Kind::Word { text, .. } => format!("{text:?}"),
            Kind::Quoted(t) => format!("\"{t}\""),
        }
    }
}

fn op_text(o: Op) -> &'static str {
    match o {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    pos: usize,
}

/// Characters AWS's syntax does not support, refused where they stand (outside quotes).
const REFUSED: &[char] = &['`', '@', '%', '\'', ';', ','];

fn lex(c: &[char]) -> Result<Vec<Token>, QueryError> {
    let err = |position: usize, message: String| QueryError { position, message };
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let pos = i;
        let simple = match ch {
            '(' => Some(Kind::LParen),
            ')' => Some(Kind::RParen),
            '[' => Some(Kind::LBracket),
            ']' => Some(Kind::RBracket),
            '{' => Some(Kind::LBrace),
            '}' => Some(Kind::RBrace),
            ':' => Some(Kind::Colon),
            _ => None,
        };
        if ch.is_whitespace() {
            i += 1;
            continue;
        }
        if let Some(k) = simple {
            out.push(Token { kind: k, pos });
            i += 1;
            continue;
        }
        if ch == '<' || ch == '>' {
            let eq = c.get(i + 1) == Some(&'=');
            let op = match (ch, eq) {
                ('<', false) => Op::Lt,
                ('<', true) => Op::Le,
                ('>', false) => Op::Gt,
                _ => Op::Ge,
            };
            out.push(Token {
                kind: Kind::Op(op),
                pos,
            });
            i += if eq { 2 } else { 1 };
            continue;
        }
        if ch == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err(err(pos, "unterminated quoted value".into())),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => match c.get(i + 1) {
                        Some(&n) => {
                            s.push(n);
                            i += 2;
                        }
                        None => return Err(err(i, "'\\' at the end of the query".into())),
                    },
                    Some(&n) => {
                        s.push(n);
                        i += 1;
                    }
                }
            }
            out.push(Token {
                kind: Kind::Quoted(s),
                pos,
            });
            continue;
        }
        let value_follows = out.last().is_some_and(|t| {
            matches!(
                t.kind,
                Kind::Colon | Kind::Op(_) | Kind::LBracket | Kind::LBrace | Kind::To
            )
        });
        if ch == '-' && !value_follows {
            // A hyphen starting a term is AWS's exclusion; a hyphen inside a word is text.
            return Err(err(
                pos,
                "'-term' (exclusion) is not supported: write NOT term".into(),
            ));
        }
        if ch == '=' {
            return Err(err(pos, "'=' is not an operator: write field:value".into()));
        }
        // A word: up to whitespace or a special character; `\` escapes the next one.
        let mut s = String::new();
        let mut glob = false;
        while let Some(&n) = c.get(i) {
            if n.is_whitespace() || "()[]{}<>\":=".contains(n) {
                break;
            }
            if REFUSED.contains(&n) {
                return Err(err(
                    i,
                    format!("{n:?} is not supported in a query (quote the value)"),
                ));
            }
            if n == '\\' {
                match c.get(i + 1) {
                    Some(&e) => {
                        s.push(e);
                        i += 2;
                        continue;
                    }
                    None => return Err(err(i, "'\\' at the end of the query".into())),
                }
            }
            if n == '*' || n == '?' {
                glob = true;
            }
            s.push(n);
            i += 1;
        }
        if s.is_empty() {
            // Only reachable through a refused character handled above; never loop.
            return Err(err(pos, format!("unexpected {ch:?}")));
        }
        let kind = match s.as_str() {
            "AND" if !glob => Kind::And,
            "OR" if !glob => Kind::Or,
            "NOT" if !glob => Kind::Not,
            "TO" if !glob => Kind::To,
            _ => Kind::Word { text: s, glob },
        };
        out.push(Token { kind, pos });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Parser

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    terms: usize,
    end: usize,
}

impl Parser {
    fn err(&self, position: usize, message: &str) -> QueryError {
        QueryError {
            position,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<&Kind> {
        self.tokens.get(self.at).map(|t| &t.kind)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.pos)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Kind::Or) {
            self.at += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut parts = vec![self.unary(depth)?];
        loop {
            match self.peek() {
                Some(Kind::And) => {
                    self.at += 1;
                    parts.push(self.unary(depth)?);
                }
                // The default operator: two terms side by side are AND.
                Some(Kind::Not | Kind::LParen | Kind::Word { .. } | Kind::Quoted(_)) => {
                    parts.push(self.unary(depth)?);
                }
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn deeper(&self, depth: usize) -> Result<usize, QueryError> {
        if depth >= DEPTH_MAX {
            return Err(self.err(
                self.pos(),
                &format!("nested deeper than {DEPTH_MAX} levels (parentheses and NOT)"),
            ));
        }
        Ok(depth + 1)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        match self.peek() {
            Some(Kind::Not) => {
                let d = self.deeper(depth)?;
                self.at += 1;
                Ok(Expr::Not(Box::new(self.unary(d)?)))
            }
            Some(Kind::LParen) => {
                let d = self.deeper(depth)?;
                let open = self.pos();
                self.at += 1;
                let e = self.or(d)?;
                if self.peek() != Some(&Kind::RParen) {
                    return Err(self.err(
                        self.pos(),
                        &format!("')' expected to close the '(' at character {}", open + 1),
                    ));
                }
                self.at += 1;
                Ok(e)
            }
            Some(Kind::Word { .. } | Kind::Quoted(_)) => self.term(),
            Some(k) => {
                let what = k.describe();
                Err(self.err(
                    self.pos(),
                    &format!("unexpected {what}: a term (field:value) expected"),
                ))
            }
            None => Err(self.err(self.end, "the query ends where a term is expected")),
        }
    }

    fn count_term(&mut self, pos: usize) -> Result<(), QueryError> {
        self.terms += 1;
        if self.terms > TERMS_MAX {
            return Err(self.err(
                pos,
                &format!("more than {TERMS_MAX} terms (AWS's limit per query)"),
            ));
        }
        Ok(())
    }

    fn term(&mut self) -> Result<Expr, QueryError> {
        let start = self.pos();
        self.count_term(start)?;
        let first = self.tokens[self.at].kind.clone();
        self.at += 1;
        let field = match (&first, self.peek()) {
            (Kind::Word { text, glob: false }, Some(Kind::Colon | Kind::Op(_))) => text.clone(),
            // A bare term: thingName.
            (Kind::Word { text, glob }, _) => {
                if *glob && text.chars().all(|c| c == '*') {
                    return Ok(Expr::All);
                }
                return Ok(Expr::Term {
                    field: "thingName".into(),
                    pred: Pred::Match {
                        value: text.clone(),
                        glob: *glob,
                    },
                });
            }
            (Kind::Quoted(s), _) => {
                return Ok(Expr::Term {
                    field: "thingName".into(),
                    pred: Pred::Match {
                        value: s.clone(),
                        glob: false,
                    },
                });
            }
            _ => return Err(self.err(start, "a field name expected")),
        };
        check_field(&field).map_err(|m| self.err(start, &m))?;
        match self.peek().cloned() {
            Some(Kind::Op(op)) => {
                self.at += 1;
                let v = self.value("a value after the comparison")?;
                Ok(Expr::Term {
                    field,
                    pred: Pred::Cmp(op, v),
                })
            }
            _ => {
                // The colon.
                self.at += 1;
                let pred = match self.peek().cloned() {
                    Some(Kind::LBracket | Kind::LBrace) => self.range()?,
                    Some(Kind::Word { text, glob }) => {
                        self.at += 1;
                        if glob && text.chars().all(|c| c == '*') {
                            Pred::Exists
                        } else {
                            Pred::Match { value: text, glob }
                        }
                    }
                    Some(Kind::Quoted(s)) => {
                        self.at += 1;
                        Pred::Match {
                            value: s,
                            glob: false,
                        }
                    }
                    Some(Kind::Op(op)) => {
                        // `field:>5` (Lucene accepts it): the same as `field > 5`.
                        self.at += 1;
                        Pred::Cmp(op, self.value("a value after the comparison")?)
                    }
                    Some(Kind::LParen) => {
                        return Err(self.err(
                            self.pos(),
                            "field grouping field:(a OR b) is not supported: write \
                             field:a OR field:b",
                        ));
                    }
                    Some(k) => {
                        let what = k.describe();
                        return Err(self.err(
                            self.pos(),
                            &format!("a value expected after '{field}:', found {what}"),
                        ));
                    }
                    None => {
                        return Err(
                            self.err(self.end, &format!("a value expected after '{field}:'"))
                        );
                    }
                };
                Ok(Expr::Term { field, pred })
            }
        }
    }

    /// A plain value (word without wildcard, or quoted).
    fn value(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek().cloned() {
            Some(Kind::Word { text, glob: false }) | Some(Kind::Quoted(text)) => {
                self.at += 1;
                Ok(text)
            }
            Some(Kind::Word { glob: true, .. }) => Err(self.err(
                self.pos(),
                "a wildcard is not allowed in a comparison or range",
            )),
            Some(k) => {
                let d = k.describe();
                Err(self.err(self.pos(), &format!("{what}, found {d}")))
            }
            None => Err(self.err(self.end, &format!("{what}; the query ends"))),
        }
    }

    /// `[a TO b]`, `{a TO b}`, mixed; `*` open.
    fn range(&mut self) -> Result<Pred, QueryError> {
        let lo_incl = self.peek() == Some(&Kind::LBracket);
        self.at += 1;
        let lo = self.range_end("the range's lower end")?;
        if self.peek() != Some(&Kind::To) {
            return Err(self.err(self.pos(), "TO expected in a range ([a TO b])"));
        }
        self.at += 1;
        let hi = self.range_end("the range's upper end")?;
        let hi_incl = match self.peek() {
            Some(Kind::RBracket) => true,
            Some(Kind::RBrace) => false,
            _ => return Err(self.err(self.pos(), "']' or '}' expected to close the range")),
        };
        self.at += 1;
        Ok(Pred::Range {
            lo: lo.map(|v| (v, lo_incl)),
            hi: hi.map(|v| (v, hi_incl)),
        })
    }

    fn range_end(&mut self, what: &str) -> Result<Option<String>, QueryError> {
        if let Some(Kind::Word { text, glob: true }) = self.peek()
            && text == "*"
        {
            self.at += 1;
            return Ok(None);
        }
        self.value(what).map(Some)
    }
}

fn check_field(f: &str) -> Result<(), String> {
    if FIELDS.contains(&f) {
        return Ok(());
    }
    for p in FIELD_PREFIXES {
        if let Some(rest) = f.strip_prefix(p) {
            if rest.is_empty() {
                return Err(format!("field {f:?} needs a name after the dot"));
            }
            return Ok(());
        }
    }
    Err(format!(
        "unknown field {f:?}; fields are {}, and {}<name>",
        FIELDS.join(", "),
        FIELD_PREFIXES.join("<name>, ")
    ))
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn eval(e: &Expr, doc: &Value) -> bool {
    match e {
        Expr::All => true,
        Expr::And(v) => v.iter().all(|e| eval(e, doc)),
        Expr::Or(v) => v.iter().any(|e| eval(e, doc)),
        Expr::Not(e) => !eval(e, doc),
        Expr::Term { field, pred } => {
            let Some(v) = lookup(doc, field) else {
                return false;
            };
            let version = VERSION_FIELDS.contains(&field.as_str());
            match v {
                Value::Array(items) => items.iter().any(|i| test(i, pred, version)),
                v => test(v, pred, version),
            }
        }
    }
}

/// The value of a field in an index document: `attributes.<name>` takes the name whole (an
/// attribute name may hold dots); every other field walks the document dot by dot.
fn lookup<'a>(doc: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(name) = field.strip_prefix("attributes.") {
        return doc.get("attributes")?.get(name);
    }
    let mut v = doc;
    for part in field.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::Null | Value::Object(_) => None,
        v => Some(v),
    }
}

/// A document value as text (what string matching and parsing see).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn test(v: &Value, pred: &Pred, version: bool) -> bool {
    let Some(t) = text(v) else { return false };
    match pred {
        Pred::Exists => true,
        Pred::Match { value, glob: true } => glob_match(&value.to_lowercase(), &t.to_lowercase()),
        Pred::Match { value, glob: false } => compare(v, &t, value, version) == Ordering::Equal,
        Pred::Cmp(op, value) => {
            let o = compare(v, &t, value, version);
            match op {
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Gt => o == Ordering::Greater,
                Op::Ge => o != Ordering::Less,
            }
        }
        Pred::Range { lo, hi } => {
            let lo_ok = lo.as_ref().is_none_or(|(l, incl)| {
                let o = compare(v, &t, l, version);
                o == Ordering::Greater || (*incl && o == Ordering::Equal)
            });
            let hi_ok = hi.as_ref().is_none_or(|(h, incl)| {
                let o = compare(v, &t, h, version);
                o == Ordering::Less || (*incl && o == Ordering::Equal)
            });
            lo_ok && hi_ok
        }
    }
}

/// Orders a document value against a query value (rules in the module docs, *Order*).
fn compare(v: &Value, t: &str, q: &str, version_field: bool) -> Ordering {
    if version_field && let (Some(a), Some(b)) = (parse_version(t), parse_version(q)) {
        return cmp_versions(&a, &b);
    }
    let a_num = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number(s),
        _ => None,
    };
    if let (Some(a), Some(b)) = (a_num, parse_number(q)) {
        return a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    }
    if let (Some(a), Some(b)) = (parse_version(t), parse_version(q)) {
        return cmp_versions(&a, &b);
    }
    t.to_lowercase().cmp(&q.to_lowercase())
}

/// A finite decimal number with at most one dot (`1.2.0` is a version, not a number).
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let ok = !body.is_empty()
        && body.chars().filter(|&c| c == '.').count() <= 1
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().any(|c| c.is_ascii_digit());
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A dotted version: an optional `v`, then parts of digits separated by dots.
fn parse_version(s: &str) -> Option<Vec<u64>> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    s.split('.')
        .map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u64>().ok()
            }
        })
        .collect()
}

/// Part by part; a missing part is 0 (`1.2` = `1.2.0`).
fn cmp_versions(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// `*` any run, `?` one character; iterative with one backtrack point (linear-ish, never
/// exponential).
fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

// ---------------------------------------------------------------------------------------
// The index document

/// One thing's index document: what its queries see (field list in the module docs).
///
/// `thingGroupNames` holds the thing's static groups only (see the module docs);
/// `connectivity.timestamp` is epoch milliseconds as in AWS's index (absent before the thing
/// was first heard from); `shadow.reported` is the reported state as the inventory has it.
pub fn index_document(
    thing: &Thing,
    attributes: &BTreeMap<String, String>,
    inventory: &ferrota_api::ThingInventory,
) -> Value {
    let mut doc = json!({
        "thingName": thing.name,
        "thingGroupNames": thing.groups,
        "attributes": attributes,
        "connectivity": { "connected": inventory.connected },
    });
    if let Some(ts) = inventory.last_seen {
        doc["connectivity"]["timestamp"] = json!(ts.saturating_mul(1000));
    }
    if let Some(r) = &inventory.reported {
        doc["shadow"] = json!({ "reported": r });
        if let Some(f) = &r.firmware {
            doc["firmware"] = json!({
                "version": f.version,
                "bank": f.bank,
                "pendingTrial": f.pending_trial,
                "antiRollbackFloor": f.anti_rollback_floor,
            });
        }
        if let Some(h) = &r.hardware_id {
            doc["hardwareId"] = json!(h);
        }
    }
    if let Some(j) = &inventory.last_job {
        doc["lastJob"] = json!({ "status": j.status, "jobId": j.job_id });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_api::{FirmwareState, LastJob, ReportedState, ThingInventory};

    fn doc(name: &str, version: &str, model: &str) -> Value {
        let thing = Thing {
            name: name.into(),
            groups: vec!["lab".into()],
            created_at: 1,
        };
        let mut attrs = BTreeMap::new();
        attrs.insert("model".to_string(), model.to_string());
        attrs.insert("batch".to_string(), "12".to_string());
        attrs.insert("site.name".to_string(), "Bonn".to_string());
        let inv = ThingInventory {
            connected: true,
            last_seen: Some(1_700_000_000),
            reported: Some(ReportedState {
                firmware: Some(FirmwareState {
                    version: version.into(),
                    bank: "A".into(),
                    pending_trial: false,
                    anti_rollback_floor: 3,
                }),
                hardware_id: Some("kit-t2g".into()),
            }),
            reported_at: Some(1_700_000_000),
            last_job: Some(LastJob {
                job_id: "AFR_OTA-u1".into(),
                status: "FAILED".into(),
                last_updated_at: 5,
            }),
        };
        index_document(&thing, &attrs, &inv)
    }

    fn m(q: &str, d: &Value) -> bool {
        Query::parse(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .matches(d)
    }

    fn err(q: &str) -> QueryError {
        Query::parse(q).expect_err(q)
    }

    #[test]
    fn field_value_and_case_insensitive_values() {
        let d = doc("dev-1", "1.2.0", "KIT_T2G");
        assert!(m("attributes.model:KIT_T2G", &d));
        assert!(m("attributes.model:kit_t2g", &d));
        assert!(!m("attributes.model:KIT_XMC", &d));
        assert!(m("thingName:dev-1", &d));
        assert!(m("thingGroupNames:lab", &d));
        assert!(!m("thingGroupNames:other", &d));
        assert!(
            m("attributes.site.name:bonn", &d),
            "attribute names keep dots"
        );
        assert!(m("attributes.model:\"KIT_T2G\"", &d));
        assert!(m("connectivity.connected:true", &d));
        assert!(m("firmware.pendingTrial:false", &d));
        assert!(m("firmware.bank:A", &d));
        assert!(m("hardwareId:kit-t2g", &d));
        assert!(m("lastJob.status:FAILED", &d));
        assert!(m("lastJob.jobId:AFR_OTA-u1", &d));
        assert!(m("shadow.reported.firmware.version:1.2.0", &d));
        assert!(m("connectivity.timestamp:1700000000000", &d));
        assert!(!m("attributes.missing:x", &d));
        assert!(m("NOT attributes.missing:x", &d));
    }

    #[test]
    fn wildcards_and_exists() {
        let d = doc("dev-17", "1.2.0", "KIT_T2G");
        assert!(m("thingName:dev*", &d));
        assert!(m("thingName:DEV-1?", &d));
        assert!(!m("thingName:dev-1?9", &d));
        assert!(m("attributes.model:*T2G", &d));
        assert!(m("attributes.model:*", &d));
        assert!(!m("attributes.color:*", &d));
        assert!(m("dev*", &d), "a bare term matches thingName");
        assert!(m("dev-17", &d));
        assert!(!m("dev-1", &d));
        assert!(m("*", &d));
    }

    #[test]
    fn comparisons_numeric_and_version_order() {
        let d = doc("d", "1.10.0", "m");
        assert!(m("firmware.version > 1.9.3", &d), "1.10.0 > 1.9.3");
        assert!(m("firmware.version >= 1.10", &d), "1.10 = 1.10.0");
        assert!(m("firmware.version:1.10", &d));
        assert!(!m("firmware.version < 1.2.0", &d));
        assert!(
            m("firmware.version > 1.2", &d),
            "a version field: 1.10 > 1.2"
        );
        assert!(m("firmware.version <= 1.10.0", &d));
        assert!(!m("firmware.version < 1.10.0", &d));
        assert!(m("firmware.version < v2", &d));
        // A version against a word compares as text ("1.10.0" < "beta").
        assert!(m("firmware.version < beta", &d));
        // Numbers, also from attribute text.
        assert!(
            m("attributes.batch > 9", &d),
            "12 > 9 numerically, not as text"
        );
        assert!(m("attributes.batch:12.0", &d));
        assert!(m("firmware.antiRollbackFloor >= 3", &d));
        assert!(!m("firmware.antiRollbackFloor > 3", &d));
        assert!(m("attributes.batch:>10", &d));
        // Text order.
        assert!(m("attributes.model < n", &d));
        let old = doc("d", "1.2.0", "KIT_T2G");
        assert!(m(
            "firmware.version < 1.2.1 AND attributes.model:KIT_T2G",
            &old
        ));
    }

    #[test]
    fn ranges() {
        let d = doc("d", "1.5.0", "m");
        assert!(m("firmware.version:[1.0 TO 2.0]", &d));
        assert!(m("firmware.version:[1.5.0 TO 2.0]", &d));
        assert!(!m("firmware.version:{1.5.0 TO 2.0]", &d));
        assert!(m("firmware.version:[1.0 TO 1.5.0]", &d));
        assert!(!m("firmware.version:[1.0 TO 1.5.0}", &d));
        assert!(m("attributes.batch:[10 TO *]", &d));
        assert!(m("attributes.batch:[-5 TO 12]", &d));
        assert!(m("attributes.batch > -1", &d));
        assert!(m("attributes.batch:{* TO 13}", &d));
        assert!(!m("attributes.batch:[13 TO *]", &d));
    }

    #[test]
    fn boolean_operators_and_precedence() {
        let d = doc("d", "1.0.0", "A");
        // AND binds tighter than OR: (false AND false) OR true.
        assert!(m(
            "attributes.model:B AND attributes.model:C OR thingName:d",
            &d
        ));
        // Parentheses change it: false AND (false OR true).
        assert!(!m(
            "attributes.model:B AND (attributes.model:C OR thingName:d)",
            &d
        ));
        assert!(m("thingName:d attributes.model:A", &d), "default AND");
        assert!(!m("thingName:d attributes.model:B", &d));
        assert!(m("NOT attributes.model:B", &d));
        assert!(!m("NOT NOT attributes.model:B", &d));
        assert!(m("NOT (attributes.model:B OR attributes.model:C)", &d));
        assert!(m("thingName:x OR thingName:y OR thingName:d", &d));
    }

    #[test]
    fn errors_name_the_position() {
        let e = err("thingName:");
        assert_eq!(e.position, 10);
        assert!(e.message.contains("value expected"), "{e}");
        let e = err("firmware.versoin < 1.2");
        assert_eq!(e.position, 0);
        assert!(e.message.contains("unknown field"), "{e}");
        let e = err("(thingName:a OR thingName:b");
        assert_eq!(e.position, 27);
        assert!(e.message.contains("')' expected"), "{e}");
        let e = err("thingName:a AND");
        assert_eq!(e.position, 15);
        let e = err("thingName:\"abc");
        assert_eq!(e.position, 10);
        assert!(e.to_string().starts_with("query error at character 11:"));
        assert_eq!(err("attributes.x:[1 2]").position, 16);
        assert!(err("-thingName:a").message.contains("NOT"));
        assert!(err("thingName:(a OR b)").message.contains("field grouping"));
        assert!(err("attributes.x < a*").message.contains("wildcard"));
        assert!(err("").message.contains("empty"));
        assert!(err("   ").message.contains("empty"));
        assert!(err("thingName=a").message.contains("'='"));
        assert!(err("thingName:a;").message.contains("not supported"));
        assert!(err(") x").message.contains("unexpected"));
        assert!(err("attributes.:x").message.contains("needs a name"));
    }

    #[test]
    fn bounds() {
        let long = format!("thingName:{}", "a".repeat(QUERY_MAX_CHARS));
        assert!(err(&long).message.contains("at most 1000"));
        let ok = format!("thingName:{}", "a".repeat(QUERY_MAX_CHARS - 10));
        assert!(Query::parse(&ok).is_ok());
        let terms: Vec<String> = (0..=TERMS_MAX).map(|i| format!("thingName:t{i}")).collect();
        let e = err(&terms.join(" OR "));
        assert!(e.message.contains("more than 12 terms"), "{e}");
        assert!(Query::parse(&terms[..TERMS_MAX].join(" OR ")).is_ok());
        let deep = format!(
            "{}thingName:a{}",
            "(".repeat(DEPTH_MAX + 1),
            ")".repeat(DEPTH_MAX + 1)
        );
        assert!(err(&deep).message.contains("nested deeper"));
        let nots = format!("{}thingName:a", "NOT ".repeat(DEPTH_MAX + 1));
        assert!(err(&nots).message.contains("nested deeper"));
        let fine = format!(
            "{}thingName:a{}",
            "(".repeat(DEPTH_MAX),
            ")".repeat(DEPTH_MAX)
        );
        assert!(Query::parse(&fine).is_ok());
    }

    #[test]
    fn glob_is_not_exponential() {
        let s = "a".repeat(800);
        let p = format!("{}b", "*a".repeat(100));
        assert!(!glob_match(&p, &s));
    }

    proptest::proptest! {
        #[test]
        fn random_input_never_panics(s in "\\PC{0,200}") {
            let d = doc("d", "1.0.0", "m");
            if let Ok(q) = Query::parse(&s) {
                let _ = q.matches(&d);
            }
        }

        #[test]
        fn query_alphabet_never_panics(s in "[a-zA-Z0-9 .:*?\"\\\\()\\[\\]{}<>=-]{0,120}") {
            let d = doc("d", "1.0.0", "m");
            if let Ok(q) = Query::parse(&s) {
                let _ = q.matches(&d);
            }
        }

        #[test]
        fn keyword_soup_never_panics(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "AND", "OR", "NOT", "TO", "(", ")", "[", "]", "{", "}", "thingName:a",
                    "firmware.version", ":", "<", ">=", "1.2.0", "*", "\"x\"", "attributes.m",
                ]),
                0..40,
            )
        ) {
            let d = doc("d", "1.0.0", "m");
            if let Ok(q) = Query::parse(&words.join(" ")) {
                let _ = q.matches(&d);
            }
        }
    }
}
