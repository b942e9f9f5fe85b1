//! JSON Lines files (one JSON value a line) read straight into a [`Message`], so a Lua
//! program gets a corpus as a table, or as a frozen table, without a JSON parser in Lua.
//!
//! Mapping: objects and arrays become tables (arrays 1-based in Lua), strings strings,
//! booleans booleans, integers that fit i64 integers, other numbers floats, `null` nil (a
//! `null` inside an array leaves a hole; in an object the key is absent). Blank lines are
//! skipped. The result is one table whose items are the lines' values, in file order.

use std::io::BufRead;
use std::path::Path;
use weft_core::message::{smallvec, Message, Node, Sequence, TableNode, Value};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonlError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A line is not valid JSON.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// serde_json's description, with the column.
        message: String,
    },
}

/// Read every line of `path`.
pub(crate) fn read(path: &Path) -> Result<Message, JsonlError> {
    let name = path.display().to_string();
    let io = |source| JsonlError::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut builder = Builder::default();
    let mut items = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| JsonlError::Syntax {
                path: name.clone(),
                line: i + 1,
                message: e.to_string(),
            })?;
        items.push(builder.value(value));
    }
    let root = builder.table(TableNode {
        numbers: Vec::new(),
        array: items.into(),
        hash: Vec::new(),
    });
    Ok(Message {
        values: smallvec![root],
        nodes: builder.nodes,
    })
}

#[derive(Default)]
struct Builder {
    nodes: weft_core::message::Nodes,
}

impl Builder {
    fn table(&mut self, t: TableNode) -> Value {
        self.nodes.push(Node::Table(t));
        Value::Node(self.nodes.len() as u32 - 1)
    }

    fn value(&mut self, v: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::string(s.as_bytes()),
            J::Array(items) => {
                let mut array: Sequence = items.into_iter().map(|x| self.value(x)).collect();
                // a trailing null is no element at all, as in Lua
                while matches!(array.last(), Some(Value::Nil)) {
                    array.pop();
                }
                self.table(TableNode {
                    numbers: Vec::new(),
                    array,
                    hash: Vec::new(),
                })
            }
            J::Object(fields) => {
                let hash = fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (Value::string(k.as_bytes()), self.value(v)))
                    .collect();
                self.table(TableNode {
                    numbers: Vec::new(),
                    array: Sequence::new(),
                    hash,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "weft-jsonl-{}-{}.jsonl",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn lines_become_tables_in_order() {
        let p = write("{\"id\": 0, \"text\": \"a\", \"w\": 0.5, \"tags\": [\"x\", null, \"y\", null]}\n\n[1, 2]\n\"s\"\n");
        let m = read(&p).unwrap();
        let Value::Node(root) = m.values[0] else {
            panic!()
        };
        let Node::Table(root) = m.node(root) else {
            panic!()
        };
        assert_eq!(root.array.len(), 3);
        let Value::Node(first) = root.array[0] else {
            panic!()
        };
        let Node::Table(first) = m.node(first) else {
            panic!()
        };
        let get = |k: &[u8]| {
            first
                .hash
                .iter()
                .find(|(key, _)| key.as_bytes() == Some(k))
                .map(|(_, v)| v.clone())
        };
        assert!(matches!(get(b"id"), Some(Value::Int(0))));
        assert!(matches!(get(b"w"), Some(Value::Num(x)) if x == 0.5));
        let Some(Value::Node(tags)) = get(b"tags") else {
            panic!()
        };
        let Node::Table(tags) = m.node(tags) else {
            panic!()
        };
        assert_eq!(
            tags.array.len(),
            3,
            "inner null is a hole, trailing null dropped"
        );
        assert!(matches!(tags.array[1], Value::Nil));
        assert_eq!(root.array[2].as_bytes(), Some(&b"s"[..]));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let p = write("{\"ok\": 1}\n{\"broken\": \n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains(".jsonl:2: EOF while parsing"), "{e}");
        let missing = read(Path::new("/no/such.jsonl")).unwrap_err().to_string();
        assert!(
            missing.starts_with("/no/such.jsonl: No such file"),
            "{missing}"
        );
        std::fs::remove_file(p).unwrap();
    }
}
