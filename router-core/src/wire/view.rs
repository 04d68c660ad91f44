//! What every view has in common: the struct and its constructors ([`view!`]), plain fields
//! read and written at fixed offsets ([`fields!`]), and the big-endian values those fields
//! hold ([`FieldValue`]). Each protocol module declares its view and its plain fields with
//! these and writes by hand only what is particular to it: `check_len`, bit fields, lengths
//! and checksums.

/// Declares a view: the struct over a buffer `T: AsRef<[u8]>`, `new_unchecked`, `new_checked`
/// (which runs the view's own `check_len`) and `into_inner`. Every protocol's view has the
/// same three constructors and the same no-panic contract; only `check_len` and the fields
/// differ, and those each protocol writes itself.
macro_rules! view {
    ($(#[$attr:meta])* pub struct $name:ident;) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` without checking it.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps `buffer` and checks it with [`check_len`](Self::check_len).
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Self> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// Returns the buffer.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

/// Declares the plain fields of a view, one row each: `getter / setter: Type = offset;`. A
/// plain field is a value of a [`FieldValue`] type at a fixed offset; the getter reads it from
/// any view, the setter writes it into a writable one. Fields with bit masks, lengths that
/// move other fields, or checksums keep their own hand-written accessors.
macro_rules! fields {
    ($view:ident { $($(#[$doc:meta])* $get:ident / $set:ident: $ty:ty = $at:expr;)* }) => {
        impl<T: AsRef<[u8]>> $view<T> {
            $(
                $(#[$doc])*
                #[inline]
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::wire::FieldValue>::read(self.buffer.as_ref(), $at)
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            $(
                #[doc = concat!("Sets the field that [`", stringify!($get), "`](Self::",
                    stringify!($get), ") reads; nothing else changes (no checksum, no check).")]
                #[inline]
                pub fn $set(&mut self, value: $ty) {
                    $crate::wire::FieldValue::write(value, self.buffer.as_mut(), $at);
                }
            )*
        }
    };
}

/// A value stored at a fixed offset of a header, big-endian: what [`fields!`] reads and
/// writes. Each access is one bounds check for all of the value's bytes.
pub trait FieldValue: Sized {
    /// Reads the value at `at`.
    fn read(b: &[u8], at: usize) -> Self;
    /// Writes the value at `at`.
    fn write(self, b: &mut [u8], at: usize);
}

/// The unsigned integers, big-endian.
macro_rules! field_value_int {
    ($($ty:ty),*) => {$(
        impl FieldValue for $ty {
            #[inline(always)]
            fn read(b: &[u8], at: usize) -> Self {
                let mut bytes = [0u8; size_of::<$ty>()];
                bytes.copy_from_slice(&b[at..at + size_of::<$ty>()]);
                <$ty>::from_be_bytes(bytes)
            }

            #[inline(always)]
            fn write(self, b: &mut [u8], at: usize) {
                b[at..at + size_of::<$ty>()].copy_from_slice(&self.to_be_bytes());
            }
        }
    )*};
}

field_value_int!(u8, u16, u32);

impl FieldValue for [u8; 6] {
    #[inline(always)]
    fn read(b: &[u8], at: usize) -> Self {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[at..at + 6]);
        a
    }

    #[inline(always)]
    fn write(self, b: &mut [u8], at: usize) {
        b[at..at + 6].copy_from_slice(&self);
    }
}

/// Makes a type that converts to and from a [`FieldValue`] one itself: protocol numbers,
/// addresses and opcodes are stored as their wire integers.
macro_rules! field_value_via {
    ($($ty:ty => $raw:ty),* $(,)?) => {
        $(
            impl $crate::wire::FieldValue for $ty {
                #[inline(always)]
                fn read(b: &[u8], at: usize) -> Self {
                    Self::from(<$raw as $crate::wire::FieldValue>::read(b, at))
                }

                #[inline(always)]
                fn write(self, b: &mut [u8], at: usize) {
                    $crate::wire::FieldValue::write(<$raw>::from(self), b, at);
                }
            }
        )*
    };
}
