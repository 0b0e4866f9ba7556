//! An sbus plugin in Rust on the C ABI of sbus/plugin.h, no crates:
//!   rust.echo    (rpc)      answers its params unchanged
//!   rust.record  (message)  appends its params and a newline to the file of
//!                           its option `file`, and logs it
mod plugin_h;

use plugin_h::*;
use std::io::Write;
use std::os::raw::{c_char, c_int, c_void};

struct Service {
    host: *const sbus_host,
    context: *const sbus_context,
}

impl Service {
    fn host(&self) -> &sbus_host {
        unsafe { &*self.host }
    }

    fn fail(&self, text: &str) -> c_int {
        unsafe { (self.host().set_failure)(text.as_ptr() as *const c_char, text.len()) };
        1
    }

    /// The option `key` of the service's config entry.
    fn option(&self, key: &str) -> Option<String> {
        let host = self.host();
        let count = unsafe { (host.context_option_count)(self.context) };
        for i in 0..count {
            let mut k = sbus_str { data: std::ptr::null(), size: 0 };
            let mut v = sbus_str { data: std::ptr::null(), size: 0 };
            if unsafe { (host.context_option)(self.context, i, &mut k, &mut v) } == SBUS_OK
                && unsafe { k.bytes() } == key.as_bytes()
            {
                return Some(String::from_utf8_lossy(unsafe { v.bytes() }).into_owned());
            }
        }
        None
    }
}

unsafe extern "C" fn create(host: *const sbus_host) -> *mut c_void {
    Box::into_raw(Box::new(Service { host, context: std::ptr::null() })) as *mut c_void
}

unsafe extern "C" fn destroy(this: *mut c_void) {
    drop(Box::from_raw(this as *mut Service));
}

unsafe extern "C" fn start(this: *mut c_void, context: *const sbus_context) -> c_int {
    (*(this as *mut Service)).context = context;
    0
}

unsafe extern "C" fn echo(this: *mut c_void, request: *mut sbus_request) -> c_int {
    let service = &*(this as *const Service);
    let host = service.host();
    let params = (host.request_params)(request);
    if (host.reply_result)(request, params.data, params.size) == SBUS_OK {
        0
    } else {
        service.fail("echo: the reply was refused")
    }
}

unsafe extern "C" fn record(this: *mut c_void, request: *mut sbus_request) -> c_int {
    let service = &*(this as *const Service);
    let host = service.host();
    let path = match service.option("file") {
        Some(path) => path,
        None => return service.fail("rust.record needs options: {file: PATH}"),
    };
    let params = (host.request_params)(request).bytes();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(&[params, b"\n"].concat()));
    if let Err(error) = written {
        return service.fail(&format!("rust.record: {}: {}", path, error));
    }
    let line = format!("recorded {} bytes", params.len());
    (host.log)(service.context, SBUS_LOG_INFO, line.as_ptr() as *const c_char, line.len());
    0
}

static SERVICES: [sbus_service_def; 2] = [
    sbus_service_def {
        struct_size: std::mem::size_of::<sbus_service_def>() as u32,
        kinds: SBUS_KIND_CALL,
        name: b"echo\0".as_ptr() as *const c_char,
        create: Some(create),
        start: Some(start),
        on_call: Some(echo),
        on_message: None,
        on_event: None,
        stop: None,
        destroy: Some(destroy),
    },
    sbus_service_def {
        struct_size: std::mem::size_of::<sbus_service_def>() as u32,
        kinds: SBUS_KIND_MESSAGE,
        name: b"record\0".as_ptr() as *const c_char,
        create: Some(create),
        start: Some(start),
        on_call: None,
        on_message: Some(record),
        on_event: None,
        stop: None,
        destroy: Some(destroy),
    },
];

static PLUGIN: sbus_plugin = sbus_plugin {
    abi_major: SBUS_ABI_MAJOR,
    abi_minor: SBUS_ABI_MINOR,
    struct_size: std::mem::size_of::<sbus_plugin>() as u32,
    service_struct_size: std::mem::size_of::<sbus_service_def>() as u32,
    name: b"rust_example\0".as_ptr() as *const c_char,
    version: b"1.0.0\0".as_ptr() as *const c_char,
    services: &SERVICES as *const sbus_service_def,
    service_count: 2,
};

#[no_mangle]
pub extern "C" fn sbus_plugin_descriptor() -> *const sbus_plugin {
    &PLUGIN
}
