// SPDX-License-Identifier: GPL-2.0

//! Running device operations and printing their results, as text (`name
//! value` lines) or JSON (one object per operation).

use crate::cli::{Line, Op};
use crate::device::{Device, Res};
use crate::uapi::{self, CacheInfo, Info, PoolInfo};
use nix::errno::Errno;
use serde_json::{json, Map, Value};
use std::process;

/// What an operation gave back.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to show.
    Done,
    /// A new handle.
    Id(u64),
    /// New handles.
    Ids(Vec<u64>),
    /// Slabs freed by a shrink.
    Freed(i32),
    /// Bytes read.
    Data(Vec<u8>, bool),
    /// Named numbers (info, cache-info, pool-info).
    Fields(Vec<(&'static str, u64)>),
    /// A shell command's exit status.
    Status(i32),
}

/// The named numbers of `RSLAB_IOC_INFO`.
pub fn info_fields(i: &Info) -> Vec<(&'static str, u64)> {
    vec![
        ("version", i.version.into()),
        ("kmalloc_classes", i.kmalloc_classes.into()),
        ("max_objects", i.max_objects),
        ("max_bytes", i.max_bytes),
        ("max_total_bytes", i.max_total_bytes),
        ("max_object_size", i.max_object_size),
    ]
}

/// The named numbers of `RSLAB_IOC_CACHE_INFO`.
pub fn cache_fields(c: &CacheInfo) -> Vec<(&'static str, u64)> {
    let mut fields = vec![
        ("object_size", c.object_size.into()),
        ("size", c.size.into()),
        ("align", c.align.into()),
        ("order", c.order.into()),
        ("objs_per_slab", c.objs_per_slab.into()),
        ("cache_flags", c.cache_flags.into()),
        ("active_objs", c.active_objs),
        ("num_objs", c.num_objs),
        ("active_slabs", c.active_slabs),
        ("num_slabs", c.num_slabs),
        ("pages", c.pages),
    ];
    fields.extend(uapi::EVENT_NAMES.iter().copied().zip(c.events));
    fields
}

/// The named numbers of `RSLAB_IOC_POOL_INFO`.
pub fn pool_fields(p: &PoolInfo) -> Vec<(&'static str, u64)> {
    vec![
        ("backend", p.backend.into()),
        ("element_size", p.element_size.into()),
        ("min_nr", p.min_nr),
        ("curr_nr", p.curr_nr),
        ("outstanding", p.outstanding),
        ("alloc_backend", p.alloc_backend),
        ("alloc_reserve", p.alloc_reserve),
        ("waits", p.waits),
        ("failures", p.failures),
        ("free_reserve", p.free_reserve),
        ("free_backend", p.free_backend),
    ]
}

/// Decodes hex digits.
pub fn from_hex(s: &str) -> Result<Vec<u8>, Errno> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(Errno::EINVAL);
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| Errno::EINVAL))
        .collect()
}

/// Encodes bytes as hex digits.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one operation on `dev`.
pub fn run(dev: &Device, op: &Op) -> Res<Outcome> {
    use Outcome::*;
    Ok(match op {
        Op::Info => Fields(info_fields(&dev.info()?)),
        Op::CacheCreate {
            name,
            size,
            align,
            flags,
        } => {
            let bits = flags.iter().fold(0, |b, f| b | f.bit());
            Id(dev.cache_create(name, *size, *align, bits)?)
        }
        Op::CacheDestroy { id } => dev.cache_destroy(*id).map(|()| Done)?,
        Op::Alloc {
            source,
            size,
            nowait,
        } => {
            let flags = if *nowait { uapi::ALLOC_NOWAIT } else { 0 };
            Id(dev.alloc(*source, *size, flags)?)
        }
        Op::Free { id } => dev.free(*id).map(|()| Done)?,
        Op::Write {
            id,
            data,
            offset,
            hex,
        } => {
            let bytes = if *hex {
                from_hex(data)?
            } else {
                data.as_bytes().to_vec()
            };
            dev.write(*id, *offset, &bytes).map(|()| Done)?
        }
        Op::Read {
            id,
            len,
            offset,
            text,
        } => Data(dev.read(*id, *offset, *len as usize)?, *text),
        Op::BulkAlloc { cache, count } => Ids(dev.bulk_alloc(*cache, *count)?),
        Op::BulkFree { cache, ids } => dev.bulk_free(*cache, ids).map(|()| Done)?,
        Op::PoolCreate {
            name,
            backend,
            min_nr,
        } => Id(dev.pool_create(name, *backend, *min_nr)?),
        Op::PoolResize { id, min_nr } => dev.pool_resize(*id, *min_nr).map(|()| Done)?,
        Op::PoolDestroy { id } => dev.pool_destroy(*id).map(|()| Done)?,
        Op::Shrink { id } => Freed(dev.shrink(*id)?),
        Op::CacheInfo { id } => Fields(cache_fields(&dev.cache_info(*id)?)),
        Op::PoolInfo { id } => Fields(pool_fields(&dev.pool_info(*id)?)),
        Op::Sh { command } => {
            let status = process::Command::new("sh")
                .arg("-c")
                .arg(command.join(" "))
                .status()
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
            Status(status.code().unwrap_or(-1))
        }
    })
}

/// The operation's name as the command line spells it.
/// Renders a result as text lines.
pub fn text(result: &Res<Outcome>) -> String {
    match result {
        Err(e) => format!("error {e:?} ({})", e.desc()),
        Ok(Outcome::Done) => "ok".into(),
        Ok(Outcome::Id(id)) => format!("id {id}"),
        Ok(Outcome::Ids(ids)) => {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            format!("ids {}", ids.join(" "))
        }
        Ok(Outcome::Freed(n)) => format!("freed {n}"),
        Ok(Outcome::Data(bytes, true)) => String::from_utf8_lossy(bytes).into_owned(),
        Ok(Outcome::Data(bytes, false)) => to_hex(bytes),
        Ok(Outcome::Fields(fields)) => {
            let lines: Vec<String> = fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
            lines.join("\n")
        }
        Ok(Outcome::Status(code)) => format!("status {code}"),
    }
}

/// Renders a result as a JSON object.
pub fn json(op: &Op, result: &Res<Outcome>) -> Value {
    let mut obj = Map::new();
    obj.insert("op".into(), json!(op.name()));
    obj.insert("ok".into(), json!(result.is_ok()));
    match result {
        Err(e) => {
            obj.insert("errno".into(), json!(format!("{e:?}")));
        }
        Ok(Outcome::Done) => {}
        Ok(Outcome::Id(id)) => {
            obj.insert("id".into(), json!(id));
        }
        Ok(Outcome::Ids(ids)) => {
            obj.insert("ids".into(), json!(ids));
        }
        Ok(Outcome::Freed(n)) => {
            obj.insert("freed".into(), json!(n));
        }
        Ok(Outcome::Data(bytes, _)) => {
            obj.insert("hex".into(), json!(to_hex(bytes)));
        }
        Ok(Outcome::Fields(fields)) => {
            for (k, v) in fields {
                obj.insert((*k).into(), json!(v));
            }
        }
        Ok(Outcome::Status(code)) => {
            obj.insert("status".into(), json!(code));
        }
    }
    Value::Object(obj)
}

/// Whether a result is what `line` expected: success (or the allowed
/// errno), or the named errno.
pub fn as_expected(line: &Line, result: &Res<Outcome>) -> bool {
    match (line.expect, result) {
        (None, Ok(Outcome::Status(code))) => *code == 0,
        (None, Ok(_)) => true,
        (None, Err(got)) => line.allow == Some(*got),
        (Some(want), Err(got)) => want == *got,
        _ => false,
    }
}

/// Runs `line`, prints its result (text, with the operation's name, or
/// JSON) and says whether it went as expected.
pub fn run_and_print(dev: &Device, line: &Line, json_out: bool) -> bool {
    let result = run(dev, &line.op);
    let ok = as_expected(line, &result);
    if json_out {
        let mut v = json(&line.op, &result);
        if let (Some(want), Value::Object(obj)) = (line.expect, &mut v) {
            obj.insert("expected".into(), json!(format!("{want:?}")));
        }
        println!("{v}");
    } else if matches!(result, Ok(Outcome::Status(_))) && ok {
        // A shell command's own output is what matters.
    } else {
        let mark = match (ok, line.expect) {
            (true, Some(_)) => " (expected)",
            (true, None) if result.is_err() => " (allowed)",
            (false, Some(want)) => &format!(" (expected {want:?})"),
            _ => "",
        };
        let out = format!("{}: {}{mark}", line.op.name(), text(&result));
        if ok {
            println!("{out}");
        } else {
            eprintln!("{out}");
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(from_hex("00ff7a"), Ok(vec![0, 255, 0x7a]));
        assert_eq!(to_hex(&[0, 255, 0x7a]), "00ff7a");
        assert_eq!(from_hex("abc"), Err(Errno::EINVAL));
        assert_eq!(from_hex("zz"), Err(Errno::EINVAL));
        assert_eq!(from_hex("é0"), Err(Errno::EINVAL));
    }

    #[test]
    fn renders_text_and_json() {
        assert_eq!(text(&Ok(Outcome::Id(7))), "id 7");
        assert_eq!(text(&Ok(Outcome::Ids(vec![3, 4]))), "ids 3 4");
        assert_eq!(text(&Ok(Outcome::Data(b"hi".to_vec(), false))), "6869");
        assert_eq!(text(&Ok(Outcome::Data(b"hi".to_vec(), true))), "hi");
        assert_eq!(
            text(&Err(Errno::ENOENT)),
            "error ENOENT (No such file or directory)"
        );
        let fields = Ok(Outcome::Fields(vec![("a", 1), ("b", 2)]));
        assert_eq!(text(&fields), "a 1\nb 2");
        let v = json(&Op::Free { id: 9 }, &Err(Errno::ENOENT));
        assert_eq!(v, json!({"op": "free", "ok": false, "errno": "ENOENT"}));
        let v = json(&Op::Info, &fields);
        assert_eq!(v, json!({"op": "info", "ok": true, "a": 1, "b": 2}));
    }

    #[test]
    fn expectations() {
        let line = |expect| Line {
            expect,
            allow: None,
            op: Op::Free { id: 1 },
        };
        let allowing = Line {
            allow: Some(Errno::ENOMEM),
            ..line(None)
        };
        assert!(as_expected(&allowing, &Ok(Outcome::Done)));
        assert!(as_expected(&allowing, &Err(Errno::ENOMEM)));
        assert!(!as_expected(&allowing, &Err(Errno::EINVAL)));
        assert!(as_expected(&line(None), &Ok(Outcome::Done)));
        assert!(!as_expected(&line(None), &Err(Errno::ENOENT)));
        assert!(as_expected(&line(Some(Errno::ENOENT)), &Err(Errno::ENOENT)));
        assert!(!as_expected(
            &line(Some(Errno::ENOENT)),
            &Err(Errno::EINVAL)
        ));
        assert!(!as_expected(&line(Some(Errno::ENOENT)), &Ok(Outcome::Done)));
        assert!(!as_expected(&line(None), &Ok(Outcome::Status(1))));
    }

    #[test]
    fn every_event_is_named() {
        let fields = cache_fields(&CacheInfo::default());
        assert_eq!(fields.len(), 11 + uapi::NR_EVENTS);
        assert!(fields.iter().any(|(k, _)| *k == "alloc_fastpath"));
    }
}
