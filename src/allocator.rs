//! The binary's global allocator: mimalloc, entered through its plain `mi_malloc` family when
//! the alignment asked for is one every mimalloc block already has (8 bytes), and through the
//! `_aligned` family only above that.
//!
//! Why not `mimalloc::MiMalloc` itself: it sends every allocation to `mi_malloc_aligned`, whose
//! fast path only serves blocks up to 1 KiB, and whose slow path over-allocates (and marks the
//! page as holding interior pointers, which slows every later free on it) for any block over
//! 1 KiB that is not a power of two — the boxed request futures, the body and header buffers:
//! about nine such blocks per `/bc-authorize`. `mi_malloc` serves those from their size class.
//! Owns: the entry-point choice. Must not know: anything about the gateway.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// Alignment of every block `mi_malloc` returns: its size classes are multiples of a word, and
/// its pages start aligned.
const MI_MIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc through `mi_malloc` where that already satisfies the layout.
pub struct MiMalloc;

// SAFETY: every method forwards to mimalloc, which hands out blocks of at least `size` bytes
// aligned to `MI_MIN_ALIGN` (plain entry points) or to `align` (the `_aligned` ones), and frees
// or resizes any block it handed out whichever entry point made it.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MI_MIN_ALIGN {
            libmimalloc_sys::mi_malloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MI_MIN_ALIGN {
            libmimalloc_sys::mi_zalloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        libmimalloc_sys::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MI_MIN_ALIGN {
            libmimalloc_sys::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            libmimalloc_sys::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size class a request touches (small, medium, over 1 KiB, huge) at every alignment,
    /// through all four entry points: aligned as asked, zeroed when asked, contents kept across
    /// a resize.
    #[test]
    fn blocks_are_aligned_zeroed_and_resized_with_their_contents() {
        let a = MiMalloc;
        for size in [1usize, 7, 8, 24, 40, 100, 1000, 1025, 1500, 3000, 5000, 70_000, 5 << 20] {
            for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null() && p as usize % align == 0, "alloc {size} align {align}");
                    std::ptr::write_bytes(p, 0xa5, size);
                    let grown = size * 2 + 3;
                    let q = a.realloc(p, layout, grown);
                    assert!(!q.is_null() && q as usize % align == 0, "realloc {size}->{grown} align {align}");
                    assert!(std::slice::from_raw_parts(q, size).iter().all(|b| *b == 0xa5), "kept {size}");
                    a.dealloc(q, Layout::from_size_align(grown, align).unwrap());

                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null() && z as usize % align == 0, "zalloc {size} align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0), "zeroed {size}");
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
