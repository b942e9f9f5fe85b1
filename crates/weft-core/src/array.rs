//! Off-heap typed arrays: memory owned by Rust (or mapped from a file), outside any Lua
//! heap, shared between threads by reference.
//!
//! An [`Array`] is a view (dtype, shape, first element) into a reference-counted
//! [`Storage`]. Cloning an array, sending it to a thread or slicing it never copies the
//! elements, so handing a 10⁹-element array to a worker costs the same as a 10-element one.
//! Rows are always contiguous (slices cut whole rows), so a kernel gets a plain `&[f32]`
//! plus `rows × cols`.
//!
//! Element access from Lua goes through [`Array::get`] and [`Array::set`], which use
//! relaxed atomic loads and stores: threads writing disjoint (or even the same) elements
//! concurrently is defined behaviour, and on x86-64 and AArch64 those instructions are
//! the plain loads and stores. Kernels that want a slice use [`Array::as_slice`], whose
//! contract is that nobody writes the elements while the slice is alive.
//!
//! A compute call that reads an array through a slice takes a [`ReadLease`] on it first
//! ([`Array::lease`]): while any lease on the storage is held, [`Array::set`] fails with
//! [`ArrayError::Busy`] ("array is being read by weft.topk") instead of writing, so a
//! write through weft's API from another thread is refused rather than racing the
//! kernel. Raw pointers ([`Array::as_ptr`], LuaJIT's `a:ptr()`, the C ABI) bypass the
//! check: writing through one obtained before the call is the user's duty to avoid.

use crate::memory;
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
    Ordering,
};
use std::sync::{Arc, Mutex};

/// Every owned array starts on a cache line (and an AVX-512 vector).
pub const ALIGN: usize = 64;

/// An element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// Byte.
    U8,
    /// 16-bit unsigned integer.
    U16,
    /// 32-bit unsigned integer.
    U32,
}

impl DType {
    /// Every dtype, in the order error messages list them.
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::F64,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
    ];

    /// Parse a name such as `"f32"`.
    pub fn parse(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The name Lua sees (`"f32"`, `"u16"`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// Whether elements are floats (Lua reads them as floats, writes may be fractional).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// The C type LuaJIT's FFI calls it, for typed pointers.
    pub fn c_type(self) -> &'static str {
        match self {
            DType::F32 => "float",
            DType::F64 => "double",
            DType::I32 => "int32_t",
            DType::I64 => "int64_t",
            DType::U8 => "uint8_t",
            DType::U16 => "uint16_t",
            DType::U32 => "uint32_t",
        }
    }
}

/// The list of dtype names, for error messages.
pub fn dtype_names() -> String {
    DType::ALL.map(DType::name).join(" ")
}

/// Rust element types that an array can hold.
pub trait Element: Copy + Send + Sync + 'static {
    /// The matching dtype.
    const DTYPE: DType;
}

macro_rules! element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    };
}
element!(f32, F32);
element!(f64, F64);
element!(i32, I32);
element!(i64, I64);
element!(u8, U8);
element!(u16, U16);
element!(u32, U32);

/// What went wrong making or using an array.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArrayError {
    /// The dtype name is not one weft knows.
    #[error("unknown dtype '{0}' (expected one of: {names})", names = dtype_names())]
    UnknownDType(String),
    /// rows × cols × element size does not fit in memory's address range.
    #[error("{rows} x {cols} {dtype} elements is too large to address")]
    TooLarge {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
        /// The dtype name.
        dtype: &'static str,
    },
    /// The allocator could not provide the memory.
    #[error("cannot allocate {0} bytes (out of memory)")]
    OutOfMemory(usize),
    /// An element index past the end.
    #[error("index {index} out of range (array has {len} {what})")]
    OutOfRange {
        /// The 1-based index the caller gave.
        index: i64,
        /// The valid count.
        len: usize,
        /// "elements", "rows" or "columns".
        what: &'static str,
    },
    /// A row range that does not lie inside the array.
    #[error("slice {first}..{last} out of range (array has {rows} rows)")]
    BadSlice {
        /// First row (1-based, inclusive).
        first: i64,
        /// Last row (1-based, inclusive).
        last: i64,
        /// Rows available.
        rows: usize,
    },
    /// A write to memory mapped read-only from a file.
    #[error("array is read-only (mapped from {0})")]
    ReadOnly(String),
    /// A write while a compute call reads the array (a [`ReadLease`] is held).
    #[error("array is being read by {0} (wait for the call to return before writing it)")]
    Busy(&'static str),
    /// A value the dtype cannot hold.
    #[error("{value} does not fit in {dtype}")]
    BadValue {
        /// The value, as Lua would print it.
        value: String,
        /// The dtype name.
        dtype: &'static str,
    },
}

/// One element as Lua sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// An integer dtype's element.
    Int(i64),
    /// A float dtype's element.
    Num(f64),
}

/// Where an array's bytes live.
enum Backing {
    /// Small arrays: the global allocator, with this layout.
    Heap(Layout),
    /// Large arrays: an anonymous mapping, whose pages the kernel zero-fills on first
    /// touch (so a huge zeroed array costs nothing until written). `None` only while
    /// dropping, when it goes to [`crate::recycle`].
    Anonymous(Option<memmap2::MmapMut>),
    /// A read-only file mapping; the string names the file, the id identifies it.
    File(
        #[allow(dead_code)] memmap2::Mmap,
        String,
        Option<crate::files::FileId>,
    ),
}

/// From this size on, arrays get their own anonymous mapping.
const MAP_THRESHOLD: usize = 1 << 16;

/// The memory behind one or more array views.
pub struct Storage {
    ptr: NonNull<u8>,
    bytes: usize,
    backing: Backing,
    /// How many [`ReadLease`]s are held on this storage.
    readers: AtomicUsize,
    /// What took the latest lease (for [`ArrayError::Busy`]).
    reader: Mutex<&'static str>,
    /// Whether user code was given the address ([`Array::expose_ptr`]): such memory is
    /// never recycled, so a pointer kept past the array's life cannot write into another.
    exposed: AtomicBool,
}

// SAFETY: the storage is a plain byte buffer; all shared access to the bytes goes through
// atomics (Array::get/set) or through `as_slice`, whose caller promises no concurrent writes.
unsafe impl Send for Storage {}
// SAFETY: as above.
unsafe impl Sync for Storage {}

impl Storage {
    /// Zeroed memory; `resident`: the caller writes every byte next, so a mapping's pages
    /// are made resident at once (and huge pages asked for) rather than faulting in one
    /// by one: on a VM a 4 KiB page fault costs several microseconds, far more than
    /// writing the page.
    fn zeroed(bytes: usize, resident: bool) -> Result<Storage, ArrayError> {
        if bytes >= MAP_THRESHOLD {
            let mut map = match crate::recycle::take(bytes) {
                // Resident already: clearing it costs far less than faulting in new pages.
                Some(mut kept) => {
                    kept.fill(0);
                    kept
                }
                None => Storage::new_mapping(bytes, resident)?,
            };
            memory::owned_add(bytes);
            return Ok(Storage {
                ptr: NonNull::new(map.as_mut_ptr()).ok_or(ArrayError::OutOfMemory(bytes))?,
                bytes,
                backing: Backing::Anonymous(Some(map)),
                readers: AtomicUsize::new(0),
                reader: Mutex::new(""),
                exposed: AtomicBool::new(false),
            });
        }
        let layout = Layout::from_size_align(bytes.max(1), ALIGN)
            .map_err(|_| ArrayError::OutOfMemory(bytes))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(ArrayError::OutOfMemory(bytes))?;
        memory::owned_add(bytes);
        Ok(Storage {
            ptr,
            bytes,
            backing: Backing::Heap(layout),
            readers: AtomicUsize::new(0),
            reader: Mutex::new(""),
            exposed: AtomicBool::new(false),
        })
    }

    /// A new anonymous mapping of `bytes` (see [`Storage::zeroed`] for `resident`).
    fn new_mapping(bytes: usize, resident: bool) -> Result<memmap2::MmapMut, ArrayError> {
        let map = memmap2::MmapMut::map_anon(bytes).map_err(|_| ArrayError::OutOfMemory(bytes))?;
        #[cfg(target_os = "linux")]
        if resident {
            // Advice only: without transparent huge pages or MADV_POPULATE_WRITE
            // (Linux < 5.14) the kernel refuses and the pages fault in as usual.
            let _ = map.advise(memmap2::Advice::HugePage);
            let _ = map.advise(memmap2::Advice::PopulateWrite);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = resident;
        Ok(map)
    }

    fn mapped(map: memmap2::Mmap, origin: String, source: Option<crate::files::FileId>) -> Storage {
        let bytes = map.len();
        // A zero-length mapping still needs an aligned, non-null pointer.
        let ptr =
            NonNull::new(map.as_ptr() as *mut u8).unwrap_or(NonNull::<u64>::dangling().cast());
        memory::mapped_add(bytes);
        Storage {
            ptr,
            bytes,
            backing: Backing::File(map, origin, source),
            readers: AtomicUsize::new(0),
            reader: Mutex::new(""),
            exposed: AtomicBool::new(false),
        }
    }

    /// The call reading this storage, while a [`ReadLease`] is held on it.
    fn busy_reader(&self) -> Option<&'static str> {
        if self.readers.load(Ordering::SeqCst) == 0 {
            return None;
        }
        // A poisoned lock still holds a valid name.
        Some(*self.reader.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether writes are refused.
    pub fn read_only_origin(&self) -> Option<&str> {
        match &self.backing {
            Backing::File(_, origin, _) => Some(origin),
            _ => None,
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        match &mut self.backing {
            Backing::Heap(layout) => {
                memory::owned_sub(self.bytes);
                // SAFETY: ptr came from alloc_zeroed with this layout and is freed once.
                unsafe { std::alloc::dealloc(self.ptr.as_ptr(), *layout) }
            }
            Backing::Anonymous(map) => {
                memory::owned_sub(self.bytes);
                // An exposed mapping is unmapped: a stale pointer into it then faults.
                if let Some(map) = map.take() {
                    if !self.exposed.load(Ordering::Relaxed) {
                        crate::recycle::give(map);
                    }
                }
            }
            Backing::File(..) => memory::mapped_sub(self.bytes),
        }
    }
}

/// A compute call's claim on an array's storage ([`Array::lease`]): while it is held,
/// writes through [`Array::set`] (to any view of the storage) fail with
/// [`ArrayError::Busy`]. Dropping it ends the claim.
#[must_use = "the array is protected only while the lease is held"]
pub struct ReadLease {
    storage: Arc<Storage>,
}

impl std::fmt::Debug for ReadLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadLease")
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        self.storage.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A typed, row-major view into shared storage. Cloning shares the storage.
#[derive(Clone)]
pub struct Array {
    storage: Arc<Storage>,
    dtype: DType,
    /// Byte offset of the first element inside the storage.
    offset: usize,
    rows: usize,
    /// `None` for a 1-D array.
    cols: Option<usize>,
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Array({} {:?})", self.dtype.name(), self.shape())
    }
}

fn byte_len(dtype: DType, rows: usize, cols: Option<usize>) -> Result<usize, ArrayError> {
    rows.checked_mul(cols.unwrap_or(1))
        .and_then(|n| n.checked_mul(dtype.size()))
        .filter(|&b| b <= isize::MAX as usize - ALIGN)
        .ok_or(ArrayError::TooLarge {
            rows,
            cols: cols.unwrap_or(1),
            dtype: dtype.name(),
        })
}

impl Array {
    /// A zero-filled array of `rows` elements (1-D) or `rows × cols` (2-D).
    pub fn zeros(dtype: DType, rows: usize, cols: Option<usize>) -> Result<Array, ArrayError> {
        Array::zeroed(dtype, rows, cols, false)
    }

    /// [`Array::zeros`] for an array whose every element the caller writes next (a copy
    /// arriving from elsewhere): a large one's memory is made resident at once instead of
    /// page by page as it is written. Costs the memory up front, unlike `zeros`.
    pub fn zeros_resident(
        dtype: DType,
        rows: usize,
        cols: Option<usize>,
    ) -> Result<Array, ArrayError> {
        Array::zeroed(dtype, rows, cols, true)
    }

    fn zeroed(
        dtype: DType,
        rows: usize,
        cols: Option<usize>,
        resident: bool,
    ) -> Result<Array, ArrayError> {
        let bytes = byte_len(dtype, rows, cols)?;
        Ok(Array {
            storage: Arc::new(Storage::zeroed(bytes, resident)?),
            dtype,
            offset: 0,
            rows,
            cols,
        })
    }

    /// An array over a read-only file mapping: `offset` bytes into `map`, which must hold
    /// the whole shape (checked). `origin` names the file in errors.
    pub fn from_mapping(
        map: memmap2::Mmap,
        origin: String,
        offset: usize,
        dtype: DType,
        rows: usize,
        cols: Option<usize>,
    ) -> Result<Array, ArrayError> {
        Array::from_file_mapping(map, origin, None, offset, dtype, rows, cols)
    }

    /// [`Array::from_mapping`] that also records the mapped file's identity, so writers
    /// can refuse to replace the file an array is mapped from ([`Array::mapped_file`]).
    pub fn from_file_mapping(
        map: memmap2::Mmap,
        origin: String,
        source: Option<crate::files::FileId>,
        offset: usize,
        dtype: DType,
        rows: usize,
        cols: Option<usize>,
    ) -> Result<Array, ArrayError> {
        let bytes = byte_len(dtype, rows, cols)?;
        assert!(
            offset + bytes <= map.len(),
            "caller checked the mapping's size"
        );
        let storage = Arc::new(Storage::mapped(map, origin, source));
        assert_eq!(
            (storage.ptr.as_ptr() as usize + offset) % dtype.size(),
            0,
            "caller checked the element alignment"
        );
        Ok(Array {
            storage,
            dtype,
            offset,
            rows,
            cols,
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `(rows, None)` for 1-D, `(rows, Some(cols))` for 2-D.
    pub fn shape(&self) -> (usize, Option<usize>) {
        (self.rows, self.cols)
    }

    /// Rows (the length of a 1-D array).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row (1 for a 1-D array).
    pub fn row_len(&self) -> usize {
        self.cols.unwrap_or(1)
    }

    /// Total elements.
    pub fn len(&self) -> usize {
        self.rows * self.row_len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of element data this view covers.
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// Whether two arrays view the same storage (not necessarily the same rows).
    pub fn shares_storage(&self, other: &Array) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The file a read-only mapped array comes from.
    pub fn read_only_origin(&self) -> Option<&str> {
        self.storage.read_only_origin()
    }

    /// The identity of the file this array is mapped from, when it is a file mapping whose
    /// file was identified.
    pub fn mapped_file(&self) -> Option<crate::files::FileId> {
        match &self.storage.backing {
            Backing::File(_, _, id) => *id,
            _ => None,
        }
    }

    /// Claim the storage for reading by `by` (the call's name, as errors show it, e.g.
    /// `"weft.topk"`): until the lease is dropped, [`Array::set`] on any view of this
    /// storage fails with [`ArrayError::Busy`] naming `by`. Leases nest (several calls
    /// may read one array at once).
    ///
    /// A write already past its check when the lease is taken may still land: the lease
    /// turns writes that follow it into errors, it does not wait for earlier ones.
    pub fn lease(&self, by: &'static str) -> ReadLease {
        let storage = Arc::clone(&self.storage);
        *storage.reader.lock().unwrap_or_else(|e| e.into_inner()) = by;
        storage.readers.fetch_add(1, Ordering::SeqCst);
        ReadLease { storage }
    }

    /// The call reading this array's storage under a [`ReadLease`], if any: writers and
    /// code handing out raw pointers for writing refuse while it is `Some`.
    pub fn busy_reader(&self) -> Option<&'static str> {
        self.storage.busy_reader()
    }

    /// The address of the first element (identity checks and Rust-side reads). Valid while
    /// any view of the storage is alive.
    pub fn as_ptr(&self) -> *const u8 {
        // SAFETY: offset is inside the allocation (checked when the view was made).
        unsafe { self.storage.ptr.as_ptr().add(self.offset) }
    }

    /// The address of the first element, for user code that may keep it (LuaJIT FFI
    /// pointers, `a:ptr()`). The storage's memory is then unmapped when freed instead of
    /// going to the next array of its size, so a pointer used after the array is gone
    /// faults rather than silently writing into another array.
    pub fn expose_ptr(&self) -> *const u8 {
        self.storage.exposed.store(true, Ordering::Relaxed);
        self.as_ptr()
    }

    /// Rows `first..last` (0-based, half-open) as a view sharing memory.
    pub fn slice_rows(&self, first: usize, last: usize) -> Option<Array> {
        if first > last || last > self.rows {
            return None;
        }
        let mut view = self.clone();
        view.offset += first * self.row_len() * self.dtype.size();
        view.rows = last - first;
        Some(view)
    }

    /// Row `r` (0-based) of a 2-D array as a 1-D view.
    pub fn row(&self, r: usize) -> Option<Array> {
        let cols = self.cols?;
        let mut view = self.slice_rows(r, r + 1)?;
        view.rows = cols;
        view.cols = None;
        Some(view)
    }

    /// The elements as a slice, if `T` is the dtype.
    ///
    /// # Safety
    /// No thread may write these elements (through [`Array::set`], a raw pointer or a
    /// mutable slice) while the returned slice is alive.
    pub unsafe fn as_slice<T: Element>(&self) -> Option<&[T]> {
        (T::DTYPE == self.dtype).then(|| {
            // SAFETY: the view lies inside the storage, is aligned for T (allocations are
            // 64-byte aligned; mappings are checked) and the caller rules out writers.
            unsafe { std::slice::from_raw_parts(self.as_ptr() as *const T, self.len()) }
        })
    }

    /// The elements as a mutable slice, if `T` is the dtype and the storage is writable.
    ///
    /// # Safety
    /// Nobody else may read or write these elements while the slice is alive (e.g. the
    /// array was just created and not yet shared).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice<T: Element>(&self) -> Option<&mut [T]> {
        (T::DTYPE == self.dtype && self.read_only_origin().is_none()).then(|| {
            // SAFETY: as in as_slice, plus the caller's exclusivity promise.
            unsafe { std::slice::from_raw_parts_mut(self.as_ptr() as *mut T, self.len()) }
        })
    }

    /// This view's element bytes as a mutable slice, when nothing else can reach them:
    /// `None` unless this is the only reference to the storage (no clone, slice, row or
    /// other view of it is alive; [`Arc::get_mut`]) and the storage is writable (owned
    /// memory, not a read-only file mapping). An array fresh from [`Array::zeros`] that
    /// has not been cloned always qualifies.
    ///
    /// Safe because the `&mut self` borrow keeps this view from being read or written
    /// (through [`Array::get`], [`Array::set`] or a slice) while the bytes are borrowed,
    /// and uniqueness rules out every other view. (Raw pointers from [`Array::as_ptr`]
    /// carry no borrow; code that kept one must not use it meanwhile, as for any
    /// `as_ptr`.)
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        let len = self.byte_len();
        let offset = self.offset;
        let storage = Arc::get_mut(&mut self.storage)?;
        if storage.read_only_origin().is_some() {
            return None;
        }
        // SAFETY: the view's `len` bytes from `offset` lie inside the storage (checked when
        // the view was made); owned storage is writable; `get_mut` succeeded, so no other
        // Arc or Weak to the storage exists, and the returned slice borrows `self`
        // mutably, so nothing else reaches these bytes while it is alive.
        Some(unsafe { std::slice::from_raw_parts_mut(storage.ptr.as_ptr().add(offset), len) })
    }

    /// Element `index` (0-based, over all elements in row-major order).
    pub fn get(&self, index: usize) -> Option<Scalar> {
        (index < self.len()).then(|| {
            // SAFETY: index is in range, so the element lies inside the storage, aligned.
            unsafe { load(self.dtype, self.as_ptr().add(index * self.dtype.size())) }
        })
    }

    /// Store `value` at element `index` (0-based). Integers must fit the dtype exactly;
    /// floats are rounded to f32 for an f32 array.
    pub fn set(&self, index: usize, value: Scalar) -> Result<(), ArrayError> {
        if let Some(origin) = self.read_only_origin() {
            return Err(ArrayError::ReadOnly(origin.to_string()));
        }
        if let Some(by) = self.busy_reader() {
            return Err(ArrayError::Busy(by));
        }
        if index >= self.len() {
            return Err(ArrayError::OutOfRange {
                index: index as i64 + 1,
                len: self.len(),
                what: "elements",
            });
        }
        let bits = encode(self.dtype, value)?;
        // SAFETY: index is in range and the storage is writable (owned).
        unsafe {
            store(
                self.dtype,
                self.as_ptr().add(index * self.dtype.size()) as *mut u8,
                bits,
            )
        };
        Ok(())
    }
}

/// Read one element with a relaxed atomic load.
///
/// # Safety
/// `p` points at a live, aligned element of `dtype`.
unsafe fn load(dtype: DType, p: *const u8) -> Scalar {
    // SAFETY: (all arms) the caller guarantees a live aligned element; atomics of the
    // element's width make a racing writer defined behaviour.
    unsafe {
        match dtype {
            DType::F32 => Scalar::Num(f32::from_bits(
                (*(p as *const AtomicU32)).load(Ordering::Relaxed),
            ) as f64),
            DType::F64 => Scalar::Num(f64::from_bits(
                (*(p as *const AtomicU64)).load(Ordering::Relaxed),
            )),
            DType::I32 => Scalar::Int((*(p as *const AtomicI32)).load(Ordering::Relaxed) as i64),
            DType::I64 => Scalar::Int((*(p as *const AtomicI64)).load(Ordering::Relaxed)),
            DType::U8 => Scalar::Int((*(p as *const AtomicU8)).load(Ordering::Relaxed) as i64),
            DType::U16 => Scalar::Int((*(p as *const AtomicU16)).load(Ordering::Relaxed) as i64),
            DType::U32 => Scalar::Int((*(p as *const AtomicU32)).load(Ordering::Relaxed) as i64),
        }
    }
}

/// Write one element's bits with a relaxed atomic store.
///
/// # Safety
/// `p` points at a live, aligned, writable element of `dtype`.
unsafe fn store(dtype: DType, p: *mut u8, bits: u64) {
    // SAFETY: (all arms) as in `load`; `bits` was produced by `encode` for this dtype.
    unsafe {
        match dtype.size() {
            1 => (*(p as *const AtomicU8)).store(bits as u8, Ordering::Relaxed),
            2 => (*(p as *const AtomicU16)).store(bits as u16, Ordering::Relaxed),
            4 => (*(p as *const AtomicU32)).store(bits as u32, Ordering::Relaxed),
            _ => (*(p as *const AtomicU64)).store(bits, Ordering::Relaxed),
        }
    }
}

/// The bit pattern `value` has as an element of `dtype`, or why it cannot be one.
fn encode(dtype: DType, value: Scalar) -> Result<u64, ArrayError> {
    let bad = || ArrayError::BadValue {
        value: match value {
            Scalar::Int(i) => i.to_string(),
            Scalar::Num(n) => format!("{n}"),
        },
        dtype: dtype.name(),
    };
    let int = || -> Result<i64, ArrayError> {
        match value {
            Scalar::Int(i) => Ok(i),
            // Integral floats (LuaJIT has no integers) within i64 convert exactly.
            Scalar::Num(n) => crate::key::integral(n).ok_or_else(bad),
        }
    };
    let num = match value {
        Scalar::Int(i) => i as f64,
        Scalar::Num(n) => n,
    };
    Ok(match dtype {
        DType::F32 => u64::from((num as f32).to_bits()),
        DType::F64 => num.to_bits(),
        DType::I32 => i32::try_from(int()?).map_err(|_| bad())? as u32 as u64,
        DType::I64 => int()? as u64,
        DType::U8 => u64::from(u8::try_from(int()?).map_err(|_| bad())?),
        DType::U16 => u64::from(u16::try_from(int()?).map_err(|_| bad())?),
        DType::U32 => u64::from(u32::try_from(int()?).map_err(|_| bad())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A freed mapping goes to the next array of its size, unless user code was given its
    /// address: then it is unmapped, and a stale pointer cannot reach a live array.
    #[test]
    #[cfg_attr(miri, ignore)] // anonymous mappings: Miri has no mmap
    fn exposed_memory_is_not_recycled() {
        // A size no other test allocates (the store is shared by the crate's tests).
        let n = MAP_THRESHOLD / 4 + 4096 * 5 + 12;
        let bytes = n * 4;
        let a = Array::zeros(DType::F32, n, None).unwrap();
        let _ = a.as_ptr();
        drop(a);
        let kept = crate::recycle::take(bytes).expect("an unexposed mapping is kept");
        crate::recycle::give(kept);
        let b = Array::zeros(DType::F32, n, None).unwrap();
        let view = b.slice_rows(1, 3).unwrap();
        assert!(!view.expose_ptr().is_null());
        drop(b);
        assert!(
            crate::recycle::take(bytes).is_none(),
            "the view still holds it"
        );
        drop(view);
        assert!(
            crate::recycle::take(bytes).is_none(),
            "exposed through a view: unmapped, not kept"
        );
    }

    #[test]
    fn zeroed_aligned_and_counted() {
        let before = memory::owned_by_this_thread();
        let a = Array::zeros(DType::F32, 1000, Some(3)).unwrap();
        assert_eq!(a.as_ptr() as usize % ALIGN, 0);
        assert!(memory::owned_by_this_thread().wrapping_sub(before) >= 12_000);
        assert!((0..3000).all(|i| a.get(i) == Some(Scalar::Num(0.0))));
        assert_eq!(a.get(3000), None);
        drop(a);
        assert_eq!(memory::owned_by_this_thread(), before);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // an anonymous mapping: Miri has no mmap
    fn a_freed_large_array_s_memory_comes_back_zeroed_for_the_next_of_its_size() {
        // A size no other test allocates, so the kept mapping is this test's.
        let rows = 123_457;
        for resident in [false, true] {
            let make = || {
                if resident {
                    Array::zeros_resident(DType::U8, rows, None).unwrap()
                } else {
                    Array::zeros(DType::U8, rows, None).unwrap()
                }
            };
            let mut a = make();
            a.bytes_mut().unwrap().fill(0xAB);
            let first = a.as_ptr();
            drop(a);
            let b = make();
            assert_eq!(b.as_ptr(), first, "the freed mapping is reused");
            assert!(
                (0..rows).all(|i| b.get(i) == Some(Scalar::Int(0))),
                "and cleared"
            );
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // an anonymous mapping: Miri has no mmap
    fn resident_arrays_are_zeroed_mapped_and_writable_like_any_other() {
        for rows in [10, 100_000] {
            let a = Array::zeros_resident(DType::F32, rows, Some(3)).unwrap();
            assert_eq!(
                (a.shape(), a.as_ptr() as usize % ALIGN),
                ((rows, Some(3)), 0)
            );
            assert!((0..a.len())
                .step_by(997)
                .all(|i| a.get(i) == Some(Scalar::Num(0.0))));
            a.set(a.len() - 1, Scalar::Num(1.5)).unwrap();
            assert_eq!(a.get(a.len() - 1), Some(Scalar::Num(1.5)));
        }
    }

    #[test]
    fn set_get_round_trip_every_dtype_and_refuse_what_does_not_fit() {
        for d in DType::ALL {
            let a = Array::zeros(d, 4, None).unwrap();
            a.set(2, Scalar::Int(7)).unwrap();
            let want = if d.is_float() {
                Scalar::Num(7.0)
            } else {
                Scalar::Int(7)
            };
            assert_eq!(a.get(2), Some(want), "{d:?}");
            assert_eq!(
                a.get(1),
                Some(if d.is_float() {
                    Scalar::Num(0.0)
                } else {
                    Scalar::Int(0)
                })
            );
        }
        let u8s = Array::zeros(DType::U8, 2, None).unwrap();
        assert!(matches!(
            u8s.set(0, Scalar::Int(256)),
            Err(ArrayError::BadValue { .. })
        ));
        assert!(matches!(
            u8s.set(0, Scalar::Int(-1)),
            Err(ArrayError::BadValue { .. })
        ));
        assert!(matches!(
            u8s.set(0, Scalar::Num(1.5)),
            Err(ArrayError::BadValue { .. })
        ));
        u8s.set(1, Scalar::Num(255.0)).unwrap();
        assert_eq!(u8s.get(1), Some(Scalar::Int(255)));
        assert!(matches!(
            u8s.set(2, Scalar::Int(1)),
            Err(ArrayError::OutOfRange {
                index: 3,
                len: 2,
                ..
            })
        ));
        let f32s = Array::zeros(DType::F32, 1, None).unwrap();
        f32s.set(0, Scalar::Num(0.1)).unwrap();
        assert_eq!(f32s.get(0), Some(Scalar::Num(0.1f32 as f64)));
    }

    #[test]
    fn slices_and_rows_share_memory() {
        let a = Array::zeros(DType::I32, 5, Some(2)).unwrap();
        let s = a.slice_rows(1, 3).unwrap();
        assert_eq!(s.shape(), (2, Some(2)));
        s.set(0, Scalar::Int(9)).unwrap();
        assert_eq!(a.get(2), Some(Scalar::Int(9)));
        let r = a.row(4).unwrap();
        assert_eq!(r.shape(), (2, None));
        r.set(1, Scalar::Int(-3)).unwrap();
        assert_eq!(a.get(9), Some(Scalar::Int(-3)));
        assert!(a.slice_rows(3, 6).is_none());
        assert!(a.slice_rows(4, 3).is_none());
        assert!(a.shares_storage(&s));
        // SAFETY: no writers while the slice lives.
        assert_eq!(unsafe { a.as_slice::<i32>() }.unwrap()[2], 9);
        // SAFETY: as above.
        assert!(unsafe { a.as_slice::<f32>() }.is_none());
    }

    #[test]
    fn writes_fail_while_a_lease_is_held_on_any_view() {
        let a = Array::zeros(DType::F32, 4, Some(2)).unwrap();
        let row = a.row(3).unwrap();
        assert_eq!(a.busy_reader(), None);
        let first = a.lease("weft.topk");
        let second = row.lease("weft.diversity");
        // Writes through any view of the storage are refused, naming the latest reader.
        assert_eq!(
            row.set(0, Scalar::Num(1.0)),
            Err(ArrayError::Busy("weft.diversity"))
        );
        assert_eq!(
            a.set(0, Scalar::Num(1.0)).unwrap_err().to_string(),
            "array is being read by weft.diversity (wait for the call to return before writing it)"
        );
        drop(second);
        // One lease left: still busy.
        assert!(a.set(7, Scalar::Num(2.0)).is_err());
        assert_eq!(a.get(7), Some(Scalar::Num(0.0)));
        drop(first);
        assert_eq!(a.busy_reader(), None);
        a.set(7, Scalar::Num(2.0)).unwrap();
        assert_eq!(row.get(1), Some(Scalar::Num(2.0)));
        // Another storage is unaffected by a lease on this one.
        let other = Array::zeros(DType::F32, 1, None).unwrap();
        let _held = a.lease("weft.similarity");
        other.set(0, Scalar::Num(3.0)).unwrap();
    }

    #[test]
    // Miri models neither file mappings nor allocation failure.
    #[cfg_attr(miri, ignore)]
    fn bytes_mut_only_for_a_unique_writable_view() {
        let mut a = Array::zeros(DType::U16, 3, Some(2)).unwrap();
        let bytes = a.bytes_mut().unwrap();
        assert_eq!(bytes.len(), 12);
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[2..4].copy_from_slice(&513u16.to_ne_bytes());
        assert_eq!(a.get(1), Some(Scalar::Int(513)));

        // Any other view of the storage (clone, slice, row) makes it shared.
        let other = a.clone();
        assert!(a.bytes_mut().is_none());
        drop(other);
        let row = a.row(2).unwrap();
        assert!(a.bytes_mut().is_none());
        drop(a);

        // The last view left owns the storage and sees only its own elements.
        let mut row = row;
        row.set(1, Scalar::Int(7)).unwrap();
        let bytes = row.bytes_mut().unwrap();
        assert_eq!(bytes.len(), 4);
        assert_eq!(&bytes[2..], &7u16.to_ne_bytes());

        // Empty arrays give an empty slice.
        let mut empty = Array::zeros(DType::F64, 0, None).unwrap();
        assert_eq!(empty.bytes_mut().map(|b| b.len()), Some(0));

        // A file mapping is read-only even when uniquely held.
        let path =
            std::env::temp_dir().join(format!("weft-array-bytes-mut-{}.bin", std::process::id()));
        std::fs::write(&path, [0u8; 8]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the file is private to this test and not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let mut mapped =
            Array::from_mapping(map, path.display().to_string(), 0, DType::U8, 8, None).unwrap();
        assert!(mapped.read_only_origin().is_some());
        assert!(mapped.bytes_mut().is_none());
        drop(mapped);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    // Miri models neither file mappings nor allocation failure.
    #[cfg_attr(miri, ignore)]
    fn huge_sizes_are_errors_not_aborts() {
        assert!(matches!(
            Array::zeros(DType::F64, usize::MAX / 4, Some(4)),
            Err(ArrayError::TooLarge { .. })
        ));
        assert!(matches!(
            Array::zeros(DType::U8, 1 << 60, None),
            Err(ArrayError::OutOfMemory(_))
        ));
        assert_eq!(DType::parse("f16"), None);
        assert_eq!(DType::parse("u16"), Some(DType::U16));
    }
}
