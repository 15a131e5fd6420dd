//! Empty: the library target exists only so the observer crate can name this package as a
//! build dependency (rebuild tracking). The programs are in the `observer` binary target.
#![no_std]
