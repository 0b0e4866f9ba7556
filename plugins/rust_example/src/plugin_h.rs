//! Hand-written bindings of sbus/plugin.h (ABI 5.0): the types and the
//! host table, field for field in the header's order.
#![allow(non_camel_case_types, dead_code)]

use std::os::raw::{c_char, c_int, c_void};

pub const SBUS_ABI_MAJOR: u32 = 5;
pub const SBUS_ABI_MINOR: u32 = 0;
pub const SBUS_KIND_CALL: u32 = 1;
pub const SBUS_KIND_MESSAGE: u32 = 2;
pub const SBUS_KIND_EVENT: u32 = 4;
pub const SBUS_OK: c_int = 0;
pub const SBUS_LOG_INFO: c_int = 1;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct sbus_str {
    pub data: *const c_char,
    pub size: usize,
}

impl sbus_str {
    /// The bytes, valid as long as sbusd says for the function that returned them.
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.size == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.data as *const u8, self.size)
        }
    }
}

pub enum sbus_request {}
pub enum sbus_context {}
pub enum sbus_sender {}

#[repr(C)]
pub struct sbus_send_options {
    pub struct_size: u32,
    pub flags: u32,
    pub ttl_ms: i64,
    pub delay_ms: i64,
    pub at_unix_ms: i64,
}

type Entry = unsafe extern "C" fn(*mut c_void, *mut sbus_request) -> c_int;

#[repr(C)]
pub struct sbus_service_def {
    pub struct_size: u32,
    pub kinds: u32,
    pub name: *const c_char,
    pub create: Option<unsafe extern "C" fn(*const sbus_host) -> *mut c_void>,
    pub start: Option<unsafe extern "C" fn(*mut c_void, *const sbus_context) -> c_int>,
    pub on_call: Option<Entry>,
    pub on_message: Option<Entry>,
    pub on_event: Option<Entry>,
    pub stop: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub destroy: Option<unsafe extern "C" fn(*mut c_void)>,
}

#[repr(C)]
pub struct sbus_plugin {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: u32,
    pub service_struct_size: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    pub services: *const sbus_service_def,
    pub service_count: usize,
}

// Read-only data with pointers to static strings and functions.
unsafe impl Sync for sbus_service_def {}
unsafe impl Sync for sbus_plugin {}

type RequestStr = unsafe extern "C" fn(*const sbus_request) -> sbus_str;
type ContextStr = unsafe extern "C" fn(*const sbus_context) -> sbus_str;

#[repr(C)]
pub struct sbus_host {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: u32,
    pub reserved: u32,
    pub request_params: RequestStr,
    pub request_id: RequestStr,
    pub request_node: RequestStr,
    pub request_category: RequestStr,
    pub request_service: RequestStr,
    pub request_topic: RequestStr,
    pub request_caller: RequestStr,
    pub request_message_id: RequestStr,
    pub request_deadline: unsafe extern "C" fn(*const sbus_request, *mut i64) -> c_int,
    pub reply_result: unsafe extern "C" fn(*mut sbus_request, *const c_char, usize) -> c_int,
    pub reply_error: unsafe extern "C" fn(*mut sbus_request, *const c_char, usize, *const c_char, usize) -> c_int,
    pub set_failure: unsafe extern "C" fn(*const c_char, usize),
    pub context_node: ContextStr,
    pub context_category: ContextStr,
    pub context_service: ContextStr,
    pub context_option_count: unsafe extern "C" fn(*const sbus_context) -> usize,
    pub context_option: unsafe extern "C" fn(*const sbus_context, usize, *mut sbus_str, *mut sbus_str) -> c_int,
    pub context_sender_settings: ContextStr,
    pub context_deadline: unsafe extern "C" fn(*const sbus_context, *mut i64) -> c_int,
    pub log: unsafe extern "C" fn(*const sbus_context, c_int, *const c_char, usize),
    pub log_enabled: unsafe extern "C" fn(*const sbus_context, c_int) -> c_int,
    pub sender_open: unsafe extern "C" fn(*const sbus_context) -> *mut sbus_sender,
    pub sender_close: unsafe extern "C" fn(*mut sbus_sender) -> c_int,
    pub sender_call: unsafe extern "C" fn(
        *mut sbus_sender,
        *const c_char,
        usize,
        *const c_char,
        usize,
        i64,
        *mut sbus_str,
        *mut sbus_str,
    ) -> c_int,
    pub sender_send: unsafe extern "C" fn(
        *mut sbus_sender,
        *const c_char,
        usize,
        *const c_char,
        usize,
        *const sbus_send_options,
    ) -> c_int,
    pub sender_publish: unsafe extern "C" fn(
        *mut sbus_sender,
        *const c_char,
        usize,
        *const c_char,
        usize,
        *const sbus_send_options,
        *mut c_int,
    ) -> c_int,
    pub sender_error: unsafe extern "C" fn(*const sbus_sender) -> sbus_str,
}
