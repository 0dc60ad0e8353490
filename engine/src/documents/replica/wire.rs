//! The documents protocol's messages ([`crate::Protocol::DOCUMENTS`]): each body is the
//! program's address, a kind byte, then the kind's fields. Every count is checked against the
//! bytes left before anything is allocated; queries nest at most [`MAX_FILTER_DEPTH`] deep.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use starling_net::PeerId;
use starling_net::entry::{Entry, EntryHash};
use starling_net::wire::put_varint;

use crate::documents::codec::DocId;
use crate::documents::keys::{self, IndexValue};
use crate::documents::query::{Filter, Query, Sort};
use crate::program::ProgramAddress;
use crate::reconcile::{self, ID_LEN, Id};
use crate::router::Protocol;
use crate::shard::{Announcement, MAX_RANGES_PER_PEER, Range, Span};

/// Filters nest at most this deep in a query from the network.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Filter nodes in one query, at most.
pub const MAX_FILTER_NODES: usize = 256;
/// Replicators a hello names, at most.
pub const MAX_HELLO_PEERS: usize = 16;
/// Spans one query names, at most.
pub const MAX_QUERY_SPANS: usize = 256;
/// Hashes one [`Wire::Holds`] asks about, at most.
pub const MAX_HOLDS: usize = 4096;
/// Bytes of entries one message carries before the sender starts another.
pub const ENTRIES_BYTES: usize = 1 << 20;

/// A peer's part in a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds every entry, takes writes from others, answers queries, reconciles.
    Replicator,
    /// Holds what it writes; reads from replicators.
    Observer,
}

/// One message of the documents protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Wire {
    /// Who I am in this program, and replicators I know.
    Hello {
        /// The sender's role.
        role: Role,
        /// A greeting (answer it with a hello of your own), not an answer.
        greeting: bool,
        /// Replicators the sender knows, with an address to dial.
        replicators: Vec<(PeerId, SocketAddr)>,
    },
    /// Entries to store; `ack` asks for an [`Wire::Ack`].
    Entries {
        /// Whether the sender wants to know which ones are held.
        ack: bool,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// These entries are held here now.
    Ack(Vec<EntryHash>),
    /// A reconciliation turn ([`reconcile::Message`], still encoded).
    Reconcile(Bytes),
    /// Send me the entries with these ids (hash prefixes).
    Want(Vec<Id>),
    /// Answer a query with the current entries of the documents it selects.
    Query {
        /// Names the answer.
        request: u64,
        /// The query.
        query: Query,
        /// Only documents whose ring points lie in these spans (none: all) — one shard's part
        /// of a search; sort and limit apply to that part.
        spans: Vec<Span>,
    },
    /// Answer with a document's current entry.
    Get {
        /// Names the answer.
        request: u64,
        /// The document.
        id: DocId,
    },
    /// The entries answering a query or a get, in parts of [`ENTRIES_BYTES`].
    Answer {
        /// The request answered.
        request: u64,
        /// The last part.
        done: bool,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// A sharded store's replicator says what ranges it holds (sent on change and as a
    /// heartbeat: one not heard for a while is taken for dead).
    Announce(Announcement),
    /// What do you hold in this span? (A newcomer checking it has fetched it all.)
    Digest {
        /// Names the answer.
        request: u64,
        /// The span.
        span: Span,
    },
    /// The answer to [`Wire::Digest`]: the count and fingerprint of the entries held there.
    DigestIs {
        /// The request answered.
        request: u64,
        /// Entries held in the span.
        count: u64,
        /// Their fingerprint (`reconcile::fingerprint` with salt 0).
        fingerprint: [u8; reconcile::FINGERPRINT_LEN],
    },
    /// A query or get refused: the sender does not hold (all of) what it was asked about,
    /// as its own view of the ring says — ask another holder.
    NotHeld {
        /// The request refused.
        request: u64,
    },
    /// Which of these entries do you hold? (A replicator about to prune them.)
    Holds {
        /// Names the answer.
        request: u64,
        /// At most [`MAX_HOLDS`].
        hashes: Vec<EntryHash>,
    },
    /// The answer to [`Wire::Holds`], one flag per hash asked about, in order.
    Held {
        /// The request answered.
        request: u64,
        /// Whether each is held.
        held: Vec<bool>,
    },
}

/// A message that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// It ends inside a field.
    #[error("documents message truncated")]
    Truncated,
    /// An unknown kind, role, filter or address tag.
    #[error("unknown {0} tag {1}")]
    Tag(&'static str, u8),
    /// Over a limit (count, depth, length).
    #[error("documents message over its limits: {0}")]
    TooLarge(&'static str),
    /// A field that does not parse (peer id, entry, string, value).
    #[error("bad {0}")]
    Bad(&'static str),
    /// Bytes after the message.
    #[error("bytes after the message")]
    Trailing,
}

const HELLO: u8 = 1;
const ENTRIES: u8 = 2;
const ACK: u8 = 3;
const RECONCILE: u8 = 4;
const WANT: u8 = 5;
const QUERY: u8 = 6;
const GET: u8 = 7;
const ANSWER: u8 = 8;
const ANNOUNCE: u8 = 9;
const DIGEST: u8 = 10;
const DIGEST_IS: u8 = 11;
const HOLDS: u8 = 12;
const HELD: u8 = 13;
const NOT_HELD: u8 = 14;

impl Wire {
    /// The whole direct message: protocol tag, program, kind, fields.
    pub fn encode(&self, program: &ProgramAddress) -> Bytes {
        let mut out = Protocol::DOCUMENTS.message(64);
        out.put_slice(&program.0);
        match self {
            Wire::Hello {
                role,
                greeting,
                replicators,
            } => {
                out.put_u8(HELLO);
                out.put_u8(match role {
                    Role::Replicator => 1,
                    Role::Observer => 2,
                });
                out.put_u8(u8::from(*greeting));
                let n = replicators.len().min(MAX_HELLO_PEERS);
                out.put_u8(n as u8);
                for (peer, addr) in &replicators[..n] {
                    put_bytes(&mut out, &peer.to_bytes());
                    put_addr(&mut out, addr);
                }
            }
            Wire::Entries { ack, entries } => {
                out.put_u8(ENTRIES);
                out.put_u8(u8::from(*ack));
                put_entries(&mut out, entries);
            }
            Wire::Ack(hashes) => {
                out.put_u8(ACK);
                put_varint(&mut out, hashes.len() as u64);
                for h in hashes {
                    out.put_slice(&h.0);
                }
            }
            Wire::Reconcile(body) => {
                out.put_u8(RECONCILE);
                out.put_slice(body);
            }
            Wire::Want(ids) => {
                out.put_u8(WANT);
                put_varint(&mut out, ids.len() as u64);
                for id in ids {
                    out.put_slice(id);
                }
            }
            Wire::Query {
                request,
                query,
                spans,
            } => {
                out.put_u8(QUERY);
                out.put_u64(*request);
                put_query(&mut out, query);
                let n = spans.len().min(MAX_QUERY_SPANS);
                put_varint(&mut out, n as u64);
                for s in &spans[..n] {
                    put_span(&mut out, s);
                }
            }
            Wire::Get { request, id } => {
                out.put_u8(GET);
                out.put_u64(*request);
                let mut k = Vec::new();
                id.encode_key(&mut k);
                put_bytes(&mut out, &k);
            }
            Wire::Answer {
                request,
                done,
                entries,
            } => {
                out.put_u8(ANSWER);
                out.put_u64(*request);
                out.put_u8(u8::from(*done));
                put_entries(&mut out, entries);
            }
            Wire::Announce(a) => {
                out.put_u8(ANNOUNCE);
                out.put_u8(u8::from(a.ready) | (u8::from(a.leaving) << 1));
                let n = a.ranges.len().min(MAX_RANGES_PER_PEER);
                out.put_u8(n as u8);
                for r in &a.ranges[..n] {
                    out.put_u64(r.offset);
                    out.put_u64(r.width);
                }
            }
            Wire::Digest { request, span } => {
                out.put_u8(DIGEST);
                out.put_u64(*request);
                put_span(&mut out, span);
            }
            Wire::DigestIs {
                request,
                count,
                fingerprint,
            } => {
                out.put_u8(DIGEST_IS);
                out.put_u64(*request);
                out.put_u64(*count);
                out.put_slice(fingerprint);
            }
            Wire::NotHeld { request } => {
                out.put_u8(NOT_HELD);
                out.put_u64(*request);
            }
            Wire::Holds { request, hashes } => {
                out.put_u8(HOLDS);
                out.put_u64(*request);
                let n = hashes.len().min(MAX_HOLDS);
                put_varint(&mut out, n as u64);
                for h in &hashes[..n] {
                    out.put_slice(&h.0);
                }
            }
            Wire::Held { request, held } => {
                out.put_u8(HELD);
                out.put_u64(*request);
                let n = held.len().min(MAX_HOLDS);
                put_varint(&mut out, n as u64);
                for chunk in held[..n].chunks(8) {
                    let byte = chunk
                        .iter()
                        .enumerate()
                        .fold(0u8, |b, (i, h)| b | (u8::from(*h) << i));
                    out.put_u8(byte);
                }
            }
        }
        out.freeze()
    }

    /// The program a message body (past the protocol tag) is for, and the rest.
    pub fn program_of(body: &Bytes) -> Result<(ProgramAddress, Bytes), WireError> {
        if body.len() < 33 {
            return Err(WireError::Truncated);
        }
        let mut p = [0; 32];
        p.copy_from_slice(&body[..32]);
        Ok((ProgramAddress(p), body.slice(32..)))
    }

    /// Decodes what [`Wire::program_of`] left: entries are slices of `rest`, not copies.
    pub fn decode(rest: Bytes) -> Result<Wire, WireError> {
        let mut r = Reader { buf: rest, pos: 0 };
        let kind = r.u8()?;
        let wire = match kind {
            HELLO => {
                let role = match r.u8()? {
                    1 => Role::Replicator,
                    2 => Role::Observer,
                    other => return Err(WireError::Tag("role", other)),
                };
                let greeting = r.u8()? != 0;
                let n = usize::from(r.u8()?);
                if n > MAX_HELLO_PEERS {
                    return Err(WireError::TooLarge("hello peers"));
                }
                let mut replicators = Vec::with_capacity(n);
                for _ in 0..n {
                    let peer =
                        PeerId::from_bytes(&r.bytes()?).map_err(|_| WireError::Bad("peer id"))?;
                    replicators.push((peer, r.addr()?));
                }
                Wire::Hello {
                    role,
                    greeting,
                    replicators,
                }
            }
            ENTRIES => {
                let ack = r.u8()? != 0;
                Wire::Entries {
                    ack,
                    entries: r.entries()?,
                }
            }
            ACK => Wire::Ack(r.hashes(usize::MAX, "acks")?),
            RECONCILE => {
                let body = r.buf.slice(r.pos..);
                r.pos = r.buf.len();
                Wire::Reconcile(body)
            }
            WANT => {
                let n = r.count(ID_LEN)?;
                if n > reconcile::MAX_IDS {
                    return Err(WireError::TooLarge("wanted ids"));
                }
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut id = [0; ID_LEN];
                    id.copy_from_slice(r.take(ID_LEN)?);
                    ids.push(id);
                }
                Wire::Want(ids)
            }
            QUERY => {
                let request = r.u64()?;
                let query = r.query()?;
                let n = r.count(9)?;
                if n > MAX_QUERY_SPANS {
                    return Err(WireError::TooLarge("query spans"));
                }
                let mut spans = Vec::with_capacity(n);
                for _ in 0..n {
                    spans.push(r.span()?);
                }
                Wire::Query {
                    request,
                    query,
                    spans,
                }
            }
            GET => {
                let request = r.u64()?;
                let key = r.bytes()?;
                let (id, rest) = DocId::decode_key(&key).map_err(|_| WireError::Bad("id"))?;
                if !rest.is_empty() {
                    return Err(WireError::Bad("id"));
                }
                Wire::Get { request, id }
            }
            ANSWER => {
                let request = r.u64()?;
                let done = r.u8()? != 0;
                Wire::Answer {
                    request,
                    done,
                    entries: r.entries()?,
                }
            }
            ANNOUNCE => {
                let flags = r.u8()?;
                if flags > 3 {
                    return Err(WireError::Tag("announce flags", flags));
                }
                let n = usize::from(r.u8()?);
                if n > MAX_RANGES_PER_PEER {
                    return Err(WireError::TooLarge("announced ranges"));
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    ranges.push(Range {
                        offset: r.u64()?,
                        width: r.u64()?,
                    });
                }
                Wire::Announce(Announcement {
                    ranges,
                    ready: flags & 1 != 0,
                    leaving: flags & 2 != 0,
                })
            }
            DIGEST => Wire::Digest {
                request: r.u64()?,
                span: r.span()?,
            },
            DIGEST_IS => {
                let request = r.u64()?;
                let count = r.u64()?;
                let mut fingerprint = [0; reconcile::FINGERPRINT_LEN];
                fingerprint.copy_from_slice(r.take(reconcile::FINGERPRINT_LEN)?);
                Wire::DigestIs {
                    request,
                    count,
                    fingerprint,
                }
            }
            NOT_HELD => Wire::NotHeld { request: r.u64()? },
            HOLDS => {
                let request = r.u64()?;
                let hashes = r.hashes(MAX_HOLDS, "holds")?;
                Wire::Holds { request, hashes }
            }
            HELD => {
                let request = r.u64()?;
                let n = r.varint()?;
                if n > MAX_HOLDS as u64 {
                    return Err(WireError::TooLarge("held"));
                }
                let n = n as usize;
                let bytes = r.take(n.div_ceil(8))?;
                let held = (0..n).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect();
                Wire::Held { request, held }
            }
            other => return Err(WireError::Tag("message", other)),
        };
        if r.pos != r.buf.len() {
            return Err(WireError::Trailing);
        }
        Ok(wire)
    }
}

/// A span: its start, then 1 and its end, or 0 (the end of the ring).
fn put_span(out: &mut BytesMut, s: &Span) {
    out.put_u64(s.start);
    match s.end {
        Some(e) => {
            out.put_u8(1);
            out.put_u64(e);
        }
        None => out.put_u8(0),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.put_slice(b);
}

fn put_addr(out: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.put_u8(4);
            out.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.put_u8(6);
            out.put_slice(&ip.octets());
        }
    }
    out.put_u16(addr.port());
}

/// Entries as `count, (len, header ‖ payload)…`: one copy into the message (batching many
/// small entries into one frame is worth more than sending each as its own).
fn put_entries(out: &mut BytesMut, entries: &[Entry]) {
    put_varint(out, entries.len() as u64);
    for e in entries {
        let [head, payload] = [e.header(), e.stored_payload().clone()];
        put_varint(out, (head.len() + payload.len()) as u64);
        out.put_slice(&head);
        out.put_slice(&payload);
    }
}

fn put_name(out: &mut BytesMut, name: &str) {
    put_bytes(out, name.as_bytes());
}

fn put_value(out: &mut BytesMut, v: &IndexValue) {
    let mut k = Vec::new();
    keys::encode(v, &mut k);
    put_bytes(out, &k);
}

fn put_query(out: &mut BytesMut, q: &Query) {
    put_varint(out, q.limit.map_or(0, |l| l as u64 + 1));
    put_varint(out, q.sort.len() as u64);
    for s in &q.sort {
        put_name(out, &s.field);
        out.put_u8(u8::from(s.descending));
    }
    put_filter(out, &q.filter);
}

const F_ALL: u8 = 0;
const F_CMP: [u8; 6] = [1, 2, 3, 4, 5, 6];
const F_PREFIX: u8 = 7;
const F_CONTAINS: u8 = 8;
const F_NULL: u8 = 9;
const F_AND: u8 = 10;
const F_OR: u8 = 11;
const F_NOT: u8 = 12;

fn put_filter(out: &mut BytesMut, f: &Filter) {
    let cmp = |out: &mut BytesMut, tag: u8, field: &str, v: &IndexValue| {
        out.put_u8(tag);
        put_name(out, field);
        put_value(out, v);
    };
    match f {
        Filter::All => out.put_u8(F_ALL),
        Filter::Eq(n, v) => cmp(out, F_CMP[0], n, v),
        Filter::Ne(n, v) => cmp(out, F_CMP[1], n, v),
        Filter::Lt(n, v) => cmp(out, F_CMP[2], n, v),
        Filter::Le(n, v) => cmp(out, F_CMP[3], n, v),
        Filter::Gt(n, v) => cmp(out, F_CMP[4], n, v),
        Filter::Ge(n, v) => cmp(out, F_CMP[5], n, v),
        Filter::Prefix {
            field,
            prefix,
            ignore_case,
        } => {
            out.put_u8(F_PREFIX);
            put_name(out, field);
            put_name(out, prefix);
            out.put_u8(u8::from(*ignore_case));
        }
        Filter::Contains {
            field,
            needle,
            ignore_case,
        } => {
            out.put_u8(F_CONTAINS);
            put_name(out, field);
            put_name(out, needle);
            out.put_u8(u8::from(*ignore_case));
        }
        Filter::IsNull(n) => {
            out.put_u8(F_NULL);
            put_name(out, n);
        }
        Filter::And(fs) | Filter::Or(fs) => {
            out.put_u8(if matches!(f, Filter::And(_)) {
                F_AND
            } else {
                F_OR
            });
            put_varint(out, fs.len() as u64);
            for f in fs {
                put_filter(out, f);
            }
        }
        Filter::Not(f) => {
            out.put_u8(F_NOT);
            put_filter(out, f);
        }
    }
}

struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.buf.len() - self.pos < n {
            return Err(WireError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// A count, then that many entry hashes (at most `max`).
    fn hashes(&mut self, max: usize, what: &'static str) -> Result<Vec<EntryHash>, WireError> {
        let n = self.count(32)?;
        if n > max {
            return Err(WireError::TooLarge(what));
        }
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            let mut h = [0; 32];
            h.copy_from_slice(self.take(32)?);
            hashes.push(EntryHash(h));
        }
        Ok(hashes)
    }

    fn span(&mut self) -> Result<Span, WireError> {
        let start = self.u64()?;
        let end = match self.u8()? {
            0 => None,
            1 => Some(self.u64()?),
            other => return Err(WireError::Tag("span end", other)),
        };
        if end.is_some_and(|e| e <= start) {
            return Err(WireError::Bad("span"));
        }
        Ok(Span { start, end })
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::TooLarge("varint"))
    }

    /// A count of items of at least `min_len` bytes each, checked against the bytes left.
    fn count(&mut self, min_len: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > ((self.buf.len() - self.pos) / min_len.max(1)) as u64 {
            return Err(WireError::Truncated);
        }
        Ok(n as usize)
    }

    fn slice(&mut self, n: usize) -> Result<Bytes, WireError> {
        if self.buf.len() - self.pos < n {
            return Err(WireError::Truncated);
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn bytes(&mut self) -> Result<Bytes, WireError> {
        let n = self.count(1)?;
        self.slice(n)
    }

    fn name(&mut self) -> Result<String, WireError> {
        let b = self.bytes()?;
        if b.len() > 4096 {
            return Err(WireError::TooLarge("name"));
        }
        String::from_utf8(b.to_vec()).map_err(|_| WireError::Bad("string"))
    }

    fn value(&mut self) -> Result<IndexValue, WireError> {
        let b = self.bytes()?;
        match keys::decode(&b) {
            Ok((v, [])) => Ok(v),
            _ => Err(WireError::Bad("value")),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8()? {
            4 => {
                let mut o = [0; 4];
                o.copy_from_slice(self.take(4)?);
                IpAddr::from(o)
            }
            6 => {
                let mut o = [0; 16];
                o.copy_from_slice(self.take(16)?);
                IpAddr::from(o)
            }
            other => return Err(WireError::Tag("address", other)),
        };
        let mut p = [0; 2];
        p.copy_from_slice(self.take(2)?);
        Ok(SocketAddr::new(ip, u16::from_be_bytes(p)))
    }

    fn entries(&mut self) -> Result<Vec<Entry>, WireError> {
        let n = self.count(1)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let b = self.bytes()?;
            out.push(Entry::from_bytes(b).map_err(|_| WireError::Bad("entry"))?);
        }
        Ok(out)
    }

    fn query(&mut self) -> Result<Query, WireError> {
        let limit = match self.varint()? {
            0 => None,
            n => Some(usize::try_from(n - 1).map_err(|_| WireError::TooLarge("limit"))?),
        };
        let n = self.count(2)?;
        if n > 16 {
            return Err(WireError::TooLarge("sort fields"));
        }
        let mut sort = Vec::with_capacity(n);
        for _ in 0..n {
            let field = self.name()?;
            let descending = self.u8()? != 0;
            sort.push(Sort { field, descending });
        }
        let mut nodes = 0;
        let filter = self.filter(0, &mut nodes)?;
        Ok(Query {
            filter,
            sort,
            limit,
        })
    }

    fn filter(&mut self, depth: usize, nodes: &mut usize) -> Result<Filter, WireError> {
        *nodes += 1;
        if depth > MAX_FILTER_DEPTH || *nodes > MAX_FILTER_NODES {
            return Err(WireError::TooLarge("filter"));
        }
        let tag = self.u8()?;
        Ok(match tag {
            F_ALL => Filter::All,
            t if F_CMP.contains(&t) => {
                let n = self.name()?;
                let v = self.value()?;
                match t - F_CMP[0] {
                    0 => Filter::Eq(n, v),
                    1 => Filter::Ne(n, v),
                    2 => Filter::Lt(n, v),
                    3 => Filter::Le(n, v),
                    4 => Filter::Gt(n, v),
                    _ => Filter::Ge(n, v),
                }
            }
            F_PREFIX | F_CONTAINS => {
                let field = self.name()?;
                let text = self.name()?;
                let ignore_case = self.u8()? != 0;
                if tag == F_PREFIX {
                    Filter::Prefix {
                        field,
                        prefix: text,
                        ignore_case,
                    }
                } else {
                    Filter::Contains {
                        field,
                        needle: text,
                        ignore_case,
                    }
                }
            }
            F_NULL => Filter::IsNull(self.name()?),
            F_AND | F_OR => {
                let n = self.count(1)?;
                let mut fs = Vec::with_capacity(n.min(MAX_FILTER_NODES));
                for _ in 0..n {
                    fs.push(self.filter(depth + 1, nodes)?);
                }
                if tag == F_AND {
                    Filter::And(fs)
                } else {
                    Filter::Or(fs)
                }
            }
            F_NOT => Filter::Not(Box::new(self.filter(depth + 1, nodes)?)),
            other => return Err(WireError::Tag("filter", other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use starling_net::entry::{EntryFields, EntrySigner, LogId};
    use starling_net::{KeyType, Keypair};

    fn entry(n: u64) -> Entry {
        EntrySigner::new(Keypair::generate(KeyType::Ed25519))
            .sign_one(&EntryFields::new(
                LogId([3; 32]),
                n,
                1_800_000_000_000_000,
                Bytes::from(vec![n as u8; 100]),
            ))
            .unwrap()
    }

    fn put_varint_vec(out: &mut Vec<u8>, v: u64) {
        let mut b = BytesMut::new();
        put_varint(&mut b, v);
        out.extend_from_slice(&b);
    }

    fn round_trip(w: &Wire) -> Wire {
        let program = ProgramAddress([7; 32]);
        let bytes = w.encode(&program);
        let (p, rest) = Wire::program_of(&bytes.slice(2..)).unwrap();
        assert_eq!(p, program);
        Wire::decode(rest).unwrap()
    }

    #[test]
    fn every_kind_round_trips() {
        let peer = Keypair::generate(KeyType::Ed25519).peer_id();
        let query = Query {
            filter: Filter::And(vec![
                Filter::Eq("a".into(), IndexValue::Int(-3)),
                Filter::Not(Box::new(Filter::Prefix {
                    field: "b".into(),
                    prefix: "x".into(),
                    ignore_case: true,
                })),
                Filter::Or(vec![Filter::IsNull("c".into()), Filter::All]),
                Filter::Ge("d".into(), IndexValue::Float(1.5)),
            ]),
            sort: vec![Sort {
                field: "a".into(),
                descending: true,
            }],
            limit: Some(10),
        };
        for w in [
            Wire::Hello {
                role: Role::Replicator,
                greeting: true,
                replicators: vec![(peer, "127.0.0.1:9".parse().unwrap())],
            },
            Wire::Entries {
                ack: true,
                entries: vec![entry(1), entry(2)],
            },
            Wire::Ack(vec![EntryHash([1; 32])]),
            Wire::Reconcile(Bytes::from_static(b"abc")),
            Wire::Want(vec![[4; ID_LEN]]),
            Wire::Query {
                request: 9,
                query: query.clone(),
                spans: vec![
                    Span {
                        start: 1,
                        end: Some(5),
                    },
                    Span::ALL,
                ],
            },
            Wire::Announce(Announcement {
                ranges: vec![Range {
                    offset: 3,
                    width: u64::MAX,
                }],
                ready: true,
                leaving: true,
            }),
            Wire::Digest {
                request: 4,
                span: Span {
                    start: 9,
                    end: None,
                },
            },
            Wire::DigestIs {
                request: 4,
                count: 12,
                fingerprint: [7; 8],
            },
            Wire::Holds {
                request: 5,
                hashes: vec![EntryHash([1; 32]), EntryHash([2; 32])],
            },
            Wire::NotHeld { request: 6 },
            Wire::Held {
                request: 5,
                held: vec![true, false, true, true, false, false, false, false, true],
            },
            Wire::Get {
                request: 1,
                id: DocId::from("doc"),
            },
            Wire::Answer {
                request: 2,
                done: true,
                entries: vec![entry(3)],
            },
        ] {
            assert_eq!(round_trip(&w), w);
        }
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        let program = ProgramAddress([7; 32]);
        let good = Wire::Entries {
            ack: false,
            entries: vec![entry(1)],
        }
        .encode(&program);
        let (_, rest) = Wire::program_of(&good.slice(2..)).unwrap();
        for cut in 0..rest.len() {
            assert!(Wire::decode(rest.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert_eq!(
            Wire::decode(Bytes::from_static(&[99])),
            Err(WireError::Tag("message", 99))
        );
        // A count far beyond the bytes is refused before allocating.
        assert_eq!(
            Wire::decode(Bytes::from_static(&[ACK, 0xff, 0xff, 0xff, 0x0f])),
            Err(WireError::Truncated)
        );
        // A span that ends before it starts; more holds than allowed.
        let mut bad_span = vec![DIGEST];
        bad_span.extend_from_slice(&[0; 8]);
        bad_span.extend_from_slice(&9u64.to_be_bytes());
        bad_span.push(1);
        bad_span.extend_from_slice(&3u64.to_be_bytes());
        assert_eq!(
            Wire::decode(Bytes::from(bad_span)),
            Err(WireError::Bad("span"))
        );
        let mut many = vec![HELD];
        many.extend_from_slice(&[0; 8]);
        many.extend_from_slice(&[0xff, 0xff, 0x03]);
        assert_eq!(
            Wire::decode(Bytes::from(many)),
            Err(WireError::TooLarge("held"))
        );
        let mut holds = vec![HOLDS];
        holds.extend_from_slice(&[0; 8]);
        put_varint_vec(&mut holds, MAX_HOLDS as u64 + 1);
        holds.extend(std::iter::repeat_n(0u8, (MAX_HOLDS + 1) * 32));
        assert_eq!(
            Wire::decode(Bytes::from(holds)),
            Err(WireError::TooLarge("holds"))
        );
        // A filter nested deeper than allowed.
        let mut deep = vec![QUERY];
        deep.extend_from_slice(&[0; 8]);
        deep.extend_from_slice(&[0, 0]);
        deep.extend(std::iter::repeat_n(F_NOT, 10_000));
        deep.push(F_ALL);
        assert_eq!(
            Wire::decode(Bytes::from(deep)),
            Err(WireError::TooLarge("filter"))
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Wire::decode(Bytes::from(bytes));
        }
    }
}
