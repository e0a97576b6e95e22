//! A data-only pickle reader: a small virtual machine that understands the opcodes torch
//! writes (docs/ARCHITECTURE.md, "PyTorch files") and builds plain values, never executing
//! anything. Globals are looked up in a fixed allow-list (`collections.OrderedDict`, torch's tensor
//! rebuilders and storage classes); any other global is refused when it is named, before it could
//! be called. Objects live in an arena so that memo references share one object, as in Python,
//! without reference counting; the final conversion to [`Value`] bounds depth and size. Where
//! storages come from (zip entries or legacy trailing data) is left to the caller's resolver.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::Value;
use super::error::TorchFileError;
use super::opcodes;
use super::tensor::{DType, StoredTensor, check_view};

/// Most items the stack may hold at once.
const MAX_STACK: usize = 1 << 20;
/// Most entries the memo may hold.
const MAX_MEMO: usize = 1 << 20;
/// Deepest nesting of containers accepted in the result.
const MAX_DEPTH: usize = 100;
/// Most values the result may expand to (shared objects are copied once per reference).
const MAX_VALUES: usize = 1 << 20;
/// Longest module or attribute name accepted in a `GLOBAL` opcode.
const MAX_GLOBAL_LINE: usize = 256;

/// Index of an object in the arena.
type Id = usize;

/// A global from the allow-list.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(DType),
}

/// A persistent id `('storage', <class>, <key>, <location>, <numel>[, None])`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageRef {
    /// Element type given by the storage class.
    pub dtype: DType,
    /// Storage key: the zip entry `data/<key>`, or the legacy storage key.
    pub key: String,
    /// Number of elements of the storage.
    pub numel: usize,
}

/// A tensor waiting for its storage bytes.
#[derive(Debug, Clone)]
struct PendingTensor {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    requires_grad: bool,
}

/// Hashable form of a dict key, so that setting an existing key replaces it as in Python.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Str(String),
    Int(i64),
}

#[derive(Debug, Default)]
struct DictNode {
    entries: Vec<(Id, Id)>,
    index: HashMap<KeyRepr, usize>,
}

#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, kept as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(DictNode),
    Global(Global),
    Storage(StorageRef),
    Tensor(PendingTensor),
}

impl Node {
    fn type_name(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt(_) => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::Tuple(_) => "tuple",
            Node::List(_) => "list",
            Node::Dict(_) => "dict",
            Node::Global(_) => "global",
            Node::Storage(_) => "storage",
            Node::Tensor(_) => "tensor",
        }
    }
}

/// Where a pickle sits, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The file, as named in every message.
    pub path: &'a Path,
    /// Which pickle of the file, e.g. "entry `model/data.pkl`".
    pub part: &'a str,
}

/// The result of running one pickle: the object graph and where the pickle ended.
#[derive(Debug)]
pub(crate) struct Pickled {
    arena: Vec<Node>,
    root: Id,
    /// Number of bytes the pickle used (up to and including `STOP`).
    pub end: usize,
}

/// Runs the pickle at the start of `data` (which may continue past its `STOP`).
/// `allow_persistent` says whether `BINPERSID` (storage references) may occur.
pub(crate) fn unpickle(
    data: &[u8],
    source: Source<'_>,
    allow_persistent: bool,
) -> Result<Pickled, TorchFileError> {
    Machine {
        data,
        pos: 0,
        op_start: 0,
        source,
        allow_persistent,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    }
    .run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
    source: Source<'a>,
    allow_persistent: bool,
    arena: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Machine<'_> {
    fn error(&self, detail: impl std::fmt::Display) -> TorchFileError {
        TorchFileError::malformed(
            self.source.path,
            format!(
                "malformed pickle in {} at byte {}: {detail}",
                self.source.part, self.op_start
            ),
        )
    }

    fn take(&mut self, n: usize) -> Result<&[u8], TorchFileError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| {
                self.error(format!(
                    "needs {n} more bytes but the pickle ends after {}",
                    self.data.len().saturating_sub(self.pos)
                ))
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], TorchFileError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn take_u8(&mut self) -> Result<u8, TorchFileError> {
        Ok(self.take_array::<1>()?[0])
    }

    fn take_u32(&mut self) -> Result<u32, TorchFileError> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    fn take_len_u32(&mut self) -> Result<usize, TorchFileError> {
        let len = self.take_u32()?;
        usize::try_from(len).map_err(|_| self.error("length does not fit in memory"))
    }

    fn take_len_u64(&mut self) -> Result<usize, TorchFileError> {
        let len = u64::from_le_bytes(self.take_array()?);
        usize::try_from(len).map_err(|_| self.error(format!("length {len} does not fit in memory")))
    }

    fn take_line(&mut self) -> Result<String, TorchFileError> {
        let rest = &self.data[self.pos..];
        let window = &rest[..rest.len().min(MAX_GLOBAL_LINE + 1)];
        let len = window
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.error("GLOBAL name is not terminated by a newline"))?;
        let line = std::str::from_utf8(&window[..len])
            .map_err(|_| self.error("GLOBAL name is not valid UTF-8"))?
            .to_string();
        self.pos += len + 1;
        Ok(line)
    }

    fn take_str(&mut self, len: usize) -> Result<String, TorchFileError> {
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_string()),
            Err(_) => Err(self.error("string is not valid UTF-8")),
        }
    }

    fn alloc(&mut self, node: Node) -> Id {
        self.arena.push(node);
        self.arena.len() - 1
    }

    fn push_id(&mut self, id: Id) -> Result<(), TorchFileError> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.error(format!("stack holds more than {MAX_STACK} items")));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), TorchFileError> {
        let id = self.alloc(node);
        self.push_id(id)
    }

    fn pop(&mut self) -> Result<Id, TorchFileError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.error("pops from an empty stack"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.error("pops from an empty stack"))
    }

    fn top(&self) -> Result<Id, TorchFileError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.error("reads the top of an empty stack"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.error("reads the top of an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, TorchFileError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.error("no MARK to pop back to"))?;
        if mark > self.stack.len() {
            return Err(self.error("MARK past the top of the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, index: u32) -> Result<(), TorchFileError> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.error(format!("memo holds more than {MAX_MEMO} entries")));
        }
        self.memo.insert(index, id);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), TorchFileError> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| self.error(format!("memo entry {index} was never stored")))?;
        self.push_id(id)
    }

    fn run(mut self) -> Result<Pickled, TorchFileError> {
        loop {
            self.op_start = self.pos;
            let code = self
                .take_u8()
                .map_err(|_| self.error("ends without a STOP opcode"))?;
            match code {
                opcodes::PROTO => {
                    let protocol = self.take_u8()?;
                    if !(2..=5).contains(&protocol) {
                        return Err(self.error(format!("unsupported pickle protocol {protocol}")));
                    }
                }
                // FRAME: framing is only a buffering hint; the bytes follow inline.
                opcodes::FRAME => {
                    self.take_len_u64()?;
                }
                opcodes::STOP => {
                    let root = self.pop()?;
                    return Ok(Pickled {
                        arena: self.arena,
                        root,
                        end: self.pos,
                    });
                }
                opcodes::MARK => {
                    if self.marks.len() >= MAX_STACK {
                        return Err(self.error("too many nested MARKs"));
                    }
                    self.marks.push(self.stack.len());
                }
                opcodes::NONE => self.push(Node::None)?,
                opcodes::NEWTRUE => self.push(Node::Bool(true))?,
                opcodes::NEWFALSE => self.push(Node::Bool(false))?,
                opcodes::BININT => {
                    let value = i32::from_le_bytes(self.take_array()?);
                    self.push(Node::Int(i64::from(value)))?;
                }
                opcodes::BININT1 => {
                    let value = self.take_u8()?;
                    self.push(Node::Int(i64::from(value)))?;
                }
                opcodes::BININT2 => {
                    let value = u16::from_le_bytes(self.take_array()?);
                    self.push(Node::Int(i64::from(value)))?;
                }
                opcodes::LONG1 => {
                    let len = usize::from(self.take_u8()?);
                    let bytes = self.take(len)?.to_vec();
                    self.push(long_from_bytes(bytes))?;
                }
                // BINFLOAT (big-endian, unlike everything else)
                opcodes::BINFLOAT => {
                    let value = f64::from_be_bytes(self.take_array()?);
                    self.push(Node::Float(value))?;
                }
                opcodes::BINUNICODE => {
                    let len = self.take_len_u32()?;
                    let text = self.take_str(len)?;
                    self.push(Node::Str(text))?;
                }
                opcodes::SHORT_BINUNICODE => {
                    let len = usize::from(self.take_u8()?);
                    let text = self.take_str(len)?;
                    self.push(Node::Str(text))?;
                }
                opcodes::BINUNICODE8 => {
                    let len = self.take_len_u64()?;
                    let text = self.take_str(len)?;
                    self.push(Node::Str(text))?;
                }
                opcodes::BINBYTES => {
                    let len = self.take_len_u32()?;
                    let bytes = self.take(len)?.to_vec();
                    self.push(Node::Bytes(bytes))?;
                }
                opcodes::SHORT_BINBYTES => {
                    let len = usize::from(self.take_u8()?);
                    let bytes = self.take(len)?.to_vec();
                    self.push(Node::Bytes(bytes))?;
                }
                opcodes::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new()))?,
                opcodes::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let count = usize::from(code - 0x84);
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?;
                }
                opcodes::EMPTY_LIST => self.push(Node::List(Vec::new()))?,
                opcodes::LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?;
                }
                opcodes::APPEND => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                opcodes::APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                opcodes::EMPTY_DICT => self.push(Node::Dict(DictNode::default()))?,
                opcodes::DICT => {
                    let items = self.pop_mark()?;
                    let id = self.alloc(Node::Dict(DictNode::default()));
                    self.set_items(id, &items)?;
                    self.push_id(id)?;
                }
                opcodes::SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, &[key, value])?;
                }
                opcodes::SETITEMS => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, &items)?;
                }
                opcodes::GLOBAL => {
                    let module = self.take_line()?;
                    let name = self.take_line()?;
                    let global = self.resolve_global(module, name)?;
                    self.push(Node::Global(global))?;
                }
                opcodes::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (&self.arena[module], &self.arena[name])
                    else {
                        return Err(self.error("STACK_GLOBAL needs two strings"));
                    };
                    let global = self.resolve_global(module.clone(), name.clone())?;
                    self.push(Node::Global(global))?;
                }
                opcodes::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let node = self.reduce(callable, args)?;
                    self.push(node)?;
                }
                opcodes::BUILD => {
                    let _state = self.pop()?;
                    let target = self.top()?;
                    // BUILD on an OrderedDict sets attributes such as a state_dict's `_metadata`
                    // (module versions): accepted and ignored.
                    if !matches!(self.arena[target], Node::Dict(_)) {
                        return Err(self.error(format!(
                            "BUILD on a {}, only dicts accept state here",
                            self.arena[target].type_name()
                        )));
                    }
                }
                opcodes::BINPERSID => {
                    if !self.allow_persistent {
                        return Err(self.error("persistent id outside the object pickle"));
                    }
                    let pid = self.pop()?;
                    let storage = self.persistent_storage(pid)?;
                    self.push(Node::Storage(storage))?;
                }
                opcodes::BINPUT => {
                    let index = self.take_u8()?;
                    self.memo_put(u32::from(index))?;
                }
                opcodes::LONG_BINPUT => {
                    let index = self.take_u32()?;
                    self.memo_put(index)?;
                }
                opcodes::MEMOIZE => {
                    let index = u32::try_from(self.memo.len())
                        .map_err(|_| self.error("memo index overflow"))?;
                    self.memo_put(index)?;
                }
                opcodes::BINGET => {
                    let index = self.take_u8()?;
                    self.memo_get(u32::from(index))?;
                }
                opcodes::LONG_BINGET => {
                    let index = self.take_u32()?;
                    self.memo_get(index)?;
                }
                other => {
                    return Err(TorchFileError::UnsupportedOpcode {
                        path: self.source.path.to_path_buf(),
                        part: self.source.part.to_string(),
                        name: opcodes::name(other),
                        code: other,
                        offset: self.op_start,
                    });
                }
            }
        }
    }

    fn append(&mut self, items: Vec<Id>) -> Result<(), TorchFileError> {
        let list = self.top()?;
        match &mut self.arena[list] {
            Node::List(existing) => {
                existing.extend(items);
                Ok(())
            }
            other => {
                let name = other.type_name();
                Err(self.error(format!("APPEND to a {name}, not a list")))
            }
        }
    }

    fn set_items(&mut self, dict: Id, items: &[Id]) -> Result<(), TorchFileError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.error("dict items come in an odd number"));
        }
        let keys: Vec<Option<KeyRepr>> = items
            .chunks_exact(2)
            .map(|pair| match &self.arena[pair[0]] {
                Node::Str(text) => Some(KeyRepr::Str(text.clone())),
                Node::Int(value) => Some(KeyRepr::Int(*value)),
                Node::Bool(value) => Some(KeyRepr::Int(i64::from(*value))),
                _ => None,
            })
            .collect();
        let Node::Dict(node) = &mut self.arena[dict] else {
            let name = self.arena[dict].type_name();
            return Err(self.error(format!("SETITEM on a {name}, not a dict")));
        };
        for (pair, key) in items.chunks_exact(2).zip(keys) {
            let entry = (pair[0], pair[1]);
            match key {
                Some(key) => match node.index.get(&key) {
                    Some(&position) => node.entries[position].1 = entry.1,
                    None => {
                        node.index.insert(key, node.entries.len());
                        node.entries.push(entry);
                    }
                },
                None => node.entries.push(entry),
            }
        }
        Ok(())
    }

    fn resolve_global(&self, module: String, name: String) -> Result<Global, TorchFileError> {
        let global = match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch", class) => DType::from_storage_class(class).map(Global::Storage),
            _ => None,
        };
        if global.is_none() && module == "torch" && name.ends_with("Storage") {
            return Err(self.error(format!(
                "storage type `torch.{name}` is not supported (only bool, integer and float storages are)"
            )));
        }
        global.ok_or_else(|| TorchFileError::ForbiddenGlobal {
            path: self.source.path.to_path_buf(),
            module,
            name,
        })
    }

    fn int_arg(&self, id: Id, what: &str) -> Result<usize, TorchFileError> {
        match &self.arena[id] {
            Node::Int(value) => usize::try_from(*value)
                .map_err(|_| self.error(format!("{what} is {value}, not a non-negative integer"))),
            Node::BigInt(_) => Err(self.error(format!("{what} does not fit in 64 bits"))),
            other => Err(self.error(format!("{what} is a {}, not an integer", other.type_name()))),
        }
    }

    fn int_tuple_arg(&self, id: Id, what: &str) -> Result<Vec<usize>, TorchFileError> {
        let Node::Tuple(items) = &self.arena[id] else {
            return Err(self.error(format!(
                "{what} is a {}, not a tuple",
                self.arena[id].type_name()
            )));
        };
        items.iter().map(|&item| self.int_arg(item, what)).collect()
    }

    fn bool_arg(&self, id: Id, what: &str) -> Result<bool, TorchFileError> {
        match &self.arena[id] {
            Node::Bool(value) => Ok(*value),
            Node::Int(value) => Ok(*value != 0),
            other => Err(self.error(format!("{what} is a {}, not a bool", other.type_name()))),
        }
    }

    fn reduce(&mut self, callable: Id, args: Id) -> Result<Node, TorchFileError> {
        let Node::Global(global) = self.arena[callable] else {
            return Err(self.error(format!(
                "REDUCE calls a {}, not an allowed global",
                self.arena[callable].type_name()
            )));
        };
        let Node::Tuple(args) = &self.arena[args] else {
            return Err(self.error(format!(
                "REDUCE arguments are a {}, not a tuple",
                self.arena[args].type_name()
            )));
        };
        let args = args.clone();
        match global {
            Global::OrderedDict => {
                let id = self.alloc(Node::Dict(DictNode::default()));
                match args.as_slice() {
                    [] => {}
                    [pairs] => {
                        let pairs = match &self.arena[*pairs] {
                            Node::List(items) | Node::Tuple(items) => items.clone(),
                            other => {
                                return Err(self.error(format!(
                                    "OrderedDict built from a {}",
                                    other.type_name()
                                )));
                            }
                        };
                        let mut flat = Vec::with_capacity(pairs.len().saturating_mul(2));
                        for pair in pairs {
                            match &self.arena[pair] {
                                Node::Tuple(kv) | Node::List(kv) if kv.len() == 2 => {
                                    flat.extend_from_slice(kv);
                                }
                                _ => return Err(self.error("OrderedDict item is not a pair")),
                            }
                        }
                        self.set_items(id, &flat)?;
                    }
                    _ => return Err(self.error("OrderedDict called with several arguments")),
                }
                Ok(std::mem::replace(&mut self.arena[id], Node::None))
            }
            Global::RebuildTensorV2 => {
                // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                //                    backward_hooks[, metadata])
                if !(6..=7).contains(&args.len()) {
                    return Err(self.error(format!(
                        "_rebuild_tensor_v2 takes 6 or 7 arguments, not {}",
                        args.len()
                    )));
                }
                let Node::Storage(storage) = &self.arena[args[0]] else {
                    return Err(self.error(format!(
                        "_rebuild_tensor_v2 storage is a {}, not a persistent storage",
                        self.arena[args[0]].type_name()
                    )));
                };
                let storage = storage.clone();
                let offset = self.int_arg(args[1], "storage offset")?;
                let shape = self.int_tuple_arg(args[2], "size")?;
                let strides = self.int_tuple_arg(args[3], "stride")?;
                let requires_grad = self.bool_arg(args[4], "requires_grad")?;
                Ok(Node::Tensor(PendingTensor {
                    storage,
                    offset,
                    shape,
                    strides,
                    requires_grad,
                }))
            }
            Global::RebuildParameter => {
                // _rebuild_parameter(data, requires_grad, backward_hooks)
                let [data, requires_grad, _hooks] = args.as_slice() else {
                    return Err(self.error(format!(
                        "_rebuild_parameter takes 3 arguments, not {}",
                        args.len()
                    )));
                };
                let requires_grad = self.bool_arg(*requires_grad, "requires_grad")?;
                match &self.arena[*data] {
                    Node::Tensor(tensor) => {
                        let mut tensor = tensor.clone();
                        tensor.requires_grad = requires_grad;
                        Ok(Node::Tensor(tensor))
                    }
                    other => Err(self.error(format!(
                        "_rebuild_parameter data is a {}, not a tensor",
                        other.type_name()
                    ))),
                }
            }
            Global::Storage(dtype) => Err(self.error(format!(
                "REDUCE calls the storage class `torch.{}`",
                dtype.storage_class()
            ))),
        }
    }

    fn persistent_storage(&self, pid: Id) -> Result<StorageRef, TorchFileError> {
        let Node::Tuple(items) = &self.arena[pid] else {
            return Err(self.error(format!(
                "persistent id is a {}, not a tuple",
                self.arena[pid].type_name()
            )));
        };
        // ('storage', class, key, location, numel) in zip files; legacy files add a sixth
        // element, view metadata, which is None in practice.
        let (tag, class, key, location, numel) = match items.as_slice() {
            [tag, class, key, location, numel] => (*tag, *class, *key, *location, *numel),
            [tag, class, key, location, numel, view] => {
                if !matches!(self.arena[*view], Node::None) {
                    return Err(self.error(
                        "persistent id carries legacy view metadata, which this reader does not support",
                    ));
                }
                (*tag, *class, *key, *location, *numel)
            }
            _ => {
                return Err(self.error(format!(
                    "persistent id has {} elements, not 5 (or 6 in legacy files)",
                    items.len()
                )));
            }
        };
        if !matches!(&self.arena[tag], Node::Str(text) if text == "storage") {
            return Err(self.error("persistent id does not start with 'storage'"));
        }
        let Node::Global(Global::Storage(dtype)) = self.arena[class] else {
            return Err(self.error("persistent id does not name a torch storage class"));
        };
        let Node::Str(key) = &self.arena[key] else {
            return Err(self.error("persistent id storage key is not a string"));
        };
        // The location (`cpu`, `cuda:0`, …) is ignored: everything is loaded to host memory.
        if !matches!(self.arena[location], Node::Str(_)) {
            return Err(self.error("persistent id location is not a string"));
        }
        let numel = self.int_arg(numel, "storage numel")?;
        Ok(StorageRef {
            dtype,
            key: key.clone(),
            numel,
        })
    }
}

/// A `LONG1` payload: little-endian two's complement, `Int` when it fits in 64 bits.
fn long_from_bytes(bytes: Vec<u8>) -> Node {
    if bytes.len() > 8 {
        return Node::BigInt(bytes);
    }
    let Some(&last) = bytes.last() else {
        return Node::Int(0);
    };
    let fill = if last & 0x80 != 0 { 0xff } else { 0x00 };
    let mut array = [fill; 8];
    array[..bytes.len()].copy_from_slice(&bytes);
    Node::Int(i64::from_le_bytes(array))
}

/// What a resolver gives for a storage: its bytes, or only its size in bytes (header-only
/// reading: the tensors produced have an empty storage and must not leave the module).
pub(crate) enum Storage {
    /// The storage's bytes.
    Read(Arc<Vec<u8>>),
    /// The storage was not read; its entry holds this many bytes.
    Unread(usize),
}

/// Turns the object graph into values, fetching storages through `resolve`.
pub(crate) struct Converter<'a, R> {
    pickled: &'a Pickled,
    path: &'a Path,
    resolve: R,
    produced: usize,
}

impl<'a, R> Converter<'a, R>
where
    R: FnMut(&StorageRef) -> Result<Storage, TorchFileError>,
{
    /// A converter over `pickled` whose storages come from `resolve`.
    pub(crate) fn new(pickled: &'a Pickled, path: &'a Path, resolve: R) -> Self {
        Converter {
            pickled,
            path,
            resolve,
            produced: 0,
        }
    }

    /// The root object as a [`Value`].
    pub(crate) fn root(mut self) -> Result<Value, TorchFileError> {
        self.value(self.pickled.root, 0)
    }

    fn value(&mut self, id: Id, depth: usize) -> Result<Value, TorchFileError> {
        if depth > MAX_DEPTH {
            return Err(TorchFileError::malformed(
                self.path,
                format!("pickle nests containers deeper than {MAX_DEPTH} levels (or is cyclic)"),
            ));
        }
        self.produced += 1;
        if self.produced > MAX_VALUES {
            return Err(TorchFileError::malformed(
                self.path,
                format!("pickle expands to more than {MAX_VALUES} values"),
            ));
        }
        let pickled = self.pickled;
        let Some(node) = pickled.arena.get(id) else {
            return Err(TorchFileError::malformed(
                self.path,
                "pickle refers to a missing object",
            ));
        };
        Ok(match node {
            Node::None => Value::None,
            Node::Bool(value) => Value::Bool(*value),
            Node::Int(value) => Value::Int(*value),
            Node::BigInt(bytes) => {
                return Err(TorchFileError::malformed(
                    self.path,
                    format!(
                        "pickle holds a {}-byte integer, too large for 64 bits",
                        bytes.len()
                    ),
                ));
            }
            Node::Float(value) => Value::Float(*value),
            Node::Str(text) => Value::Str(text.clone()),
            Node::Bytes(bytes) => Value::Bytes(bytes.clone()),
            Node::Tuple(items) => Value::Tuple(self.values(items, depth)?),
            Node::List(items) => Value::List(self.values(items, depth)?),
            Node::Dict(dict) => {
                let mut entries = Vec::with_capacity(dict.entries.len());
                for &(key, value) in &dict.entries {
                    entries.push((self.value(key, depth + 1)?, self.value(value, depth + 1)?));
                }
                Value::Dict(entries)
            }
            Node::Global(global) => {
                return Err(TorchFileError::malformed(
                    self.path,
                    format!("pickle result holds the bare global {global:?}, not data"),
                ));
            }
            Node::Storage(storage) => {
                return Err(TorchFileError::malformed(
                    self.path,
                    format!(
                        "pickle result holds the bare storage `{}`, not a tensor",
                        storage.key
                    ),
                ));
            }
            Node::Tensor(pending) => Value::Tensor(self.tensor(pending)?),
        })
    }

    fn values(&mut self, items: &[Id], depth: usize) -> Result<Vec<Value>, TorchFileError> {
        items
            .iter()
            .map(|&item| self.value(item, depth + 1))
            .collect()
    }

    fn tensor(&mut self, pending: &PendingTensor) -> Result<StoredTensor, TorchFileError> {
        let (storage, held) = match (self.resolve)(&pending.storage)? {
            Storage::Read(data) => {
                let held = data.len();
                (data, held)
            }
            Storage::Unread(held) => (Arc::default(), held),
        };
        let itemsize = pending.storage.dtype.itemsize();
        // The view must stay inside the storage's declared numel (whose bytes `resolve` has
        // checked are all present).
        let declared_bytes = pending
            .storage
            .numel
            .checked_mul(itemsize)
            .filter(|&bytes| bytes <= held)
            .ok_or_else(|| {
                TorchFileError::malformed(
                    self.path,
                    format!(
                        "storage `{}` declares {} elements but holds {} bytes",
                        pending.storage.key, pending.storage.numel, held
                    ),
                )
            })?;
        check_view(
            &pending.shape,
            &pending.strides,
            pending.offset,
            declared_bytes,
            itemsize,
        )
        .map_err(|detail| {
            TorchFileError::malformed(
                self.path,
                format!("tensor on storage `{}`: {detail}", pending.storage.key),
            )
        })?;
        Ok(StoredTensor {
            dtype: pending.storage.dtype,
            shape: pending.shape.clone(),
            strides: pending.strides.clone(),
            offset: pending.offset,
            storage,
            requires_grad: pending.requires_grad,
            storage_key: pending.storage.key.clone(),
        })
    }
}

impl Pickled {
    /// Every storage the pickle references, in order of first appearance (with repeats).
    pub(crate) fn storages(&self) -> impl Iterator<Item = &StorageRef> {
        self.arena.iter().filter_map(|node| match node {
            Node::Storage(storage) => Some(storage),
            _ => None,
        })
    }

    /// The root as a value without tensors (for the small header pickles of legacy files).
    pub(crate) fn plain_value(&self, path: &Path) -> Result<Value, TorchFileError> {
        let no_storage = |storage: &StorageRef| -> Result<Storage, TorchFileError> {
            Err(TorchFileError::malformed(
                path,
                format!("unexpected storage `{}` in a header pickle", storage.key),
            ))
        };
        Converter::new(self, path, no_storage).root()
    }

    /// The root's bytes if it is an integer wider than 64 bits (the legacy magic number).
    pub(crate) fn root_big_int(&self) -> Option<&[u8]> {
        match self.arena.get(self.root) {
            Some(Node::BigInt(bytes)) => Some(bytes),
            _ => None,
        }
    }
}
