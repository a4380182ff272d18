//! Kernel glue: module init and the `/dev/iommu` misc device. Thin on
//! purpose: every decision is made by the portable dispatcher in `ucmd`.

use crate::hw_pagetable::eventq::{self, EventFile};
use crate::platform::{Arc, UserSpace};
use crate::ucmd::{self, Ictx};
use kernel::{
    bindings,
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// True if upstream iommufd (built in or `iommufd.ko`) is present: it then
/// owns `/dev/iommu`, and registering a second "iommu" misc device would fail
/// with a sysfs duplicate-name splat.
fn upstream_iommufd_present() -> bool {
    let sym = c"iommufd_ctx_get";
    // SAFETY: `sym` is a NUL-terminated string that outlives the call.
    let addr = unsafe { bindings::__symbol_get(sym.as_char_ptr()) };
    if addr.is_null() {
        return false;
    }
    // SAFETY: `__symbol_get` succeeded, so we hold a reference on the owner
    // module that must be dropped.
    unsafe { bindings::__symbol_put(sym.as_char_ptr()) };
    true
}

/// The module: one misc device, `/dev/iommu`.
#[pin_data]
pub(crate) struct IommufdRs {
    #[pin]
    _misc: MiscDeviceRegistration<IommufdFile>,
}

impl kernel::InPlaceModule for IommufdRs {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(|| {
            if upstream_iommufd_present() {
                pr_err!("upstream iommufd owns /dev/iommu; unload it (rmmod iommufd) to use iommufd_rs\n");
                return Err(EBUSY);
            }
            if crate::module_parameters::pt_bench.value() {
                crate::pagetable::kbench::run_bench();
            }
            pr_info!("serving /dev/iommu\n");
            Ok(try_pin_init!(Self {
                _misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"iommu" }),
            }))
        })
    }
}

/// An open `/dev/iommu`.
struct IommufdFile;

#[vtable]
impl MiscDevice for IommufdFile {
    type Ptr = Arc<Ictx>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Ictx>> {
        let ictx = Ictx::new().map_err(to_error)?;
        Ok(Arc::new(ictx, GFP_KERNEL_ACCOUNT)?)
    }

    fn ioctl(
        ictx: kernel::sync::ArcBorrow<'_, Ictx>,
        _file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        let ictx: Arc<Ictx> = ictx.into();
        ucmd::ioctl(&ictx, &UserSpace, cmd, arg as u64).map_err(to_error)
    }

    fn mmap(
        ictx: kernel::sync::ArcBorrow<'_, Ictx>,
        _file: &File,
        vma: &kernel::mm::virt::VmaNew,
    ) -> Result {
        let raw = vma.as_ptr().cast::<RawVma>();
        let mut len = 0u64;
        // SAFETY: `raw` is the VMA being set up by this mmap call.
        let rc = unsafe { iommufd_rs_vma_check(raw, &mut len) };
        if rc != 0 {
            return Err(Error::from_errno(rc));
        }
        // SAFETY: as above.
        let offset = unsafe { iommufd_rs_vma_offset(raw) };
        let t = ictx.mmaps().lookup(offset, len).map_err(to_error)?;
        // `lookup` took the `users` reference the VMA now owns. The counter
        // outlives the VMA: its object cannot be destroyed while `users` is
        // raised, and the context (which frees objects at release) lives
        // while any VMA of this file exists.
        let users = t.owner.users_counter().as_ptr().cast();
        // SAFETY: `raw` is being set up; `users` outlives it (see above).
        let rc = unsafe { iommufd_rs_vma_remap(raw, t.pfn, len, users) };
        if rc != 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(())
    }
}

/// `struct vm_area_struct`, handled by pointer only.
#[repr(C)]
struct RawVma {
    _opaque: [u8; 0],
}

extern "C" {
    fn iommufd_rs_vma_check(vma: *mut RawVma, len: *mut u64) -> i32;
    fn iommufd_rs_vma_offset(vma: *mut RawVma) -> u64;
    fn iommufd_rs_vma_remap(vma: *mut RawVma, pfn: u64, len: u64, users: *mut i32) -> i32;
}

fn to_error(e: crate::errno::Errno) -> Error {
    Error::from_errno(-e.as_positive())
}

/// Release hook of access fds, called by the C shim.
///
/// # Safety
///
/// `priv_` is the private data of an access file being released.
#[no_mangle]
pub unsafe extern "C" fn iommufd_rs_access_release(priv_: *mut core::ffi::c_void) {
    // SAFETY: by the function's contract.
    let owner =
        unsafe { crate::platform::file_owner_release::<crate::drivers::mock::StAccessFile>(priv_) };
    crate::drivers::mock::access_file_released(owner);
}

/// `read()` of an event fd, called by the C shim.
///
/// # Safety
///
/// `priv_` is the private data of an open event file.
#[no_mangle]
pub unsafe extern "C" fn iommufd_rs_event_read(
    priv_: *mut core::ffi::c_void,
    buf: u64,
    count: usize,
) -> isize {
    // SAFETY: by the function's contract.
    let ef = unsafe { crate::platform::file_owner_borrow::<EventFile>(priv_) };
    match eventq::file_read(&ef, &UserSpace, buf, count) {
        Ok(n) => n as isize,
        Err(e) => -(e.as_positive() as isize),
    }
}

/// `write()` of an event fd, called by the C shim.
///
/// # Safety
///
/// `priv_` is the private data of an open event file.
#[no_mangle]
pub unsafe extern "C" fn iommufd_rs_event_write(
    priv_: *mut core::ffi::c_void,
    buf: u64,
    count: usize,
) -> isize {
    // SAFETY: by the function's contract.
    let ef = unsafe { crate::platform::file_owner_borrow::<EventFile>(priv_) };
    match eventq::file_write(&ef, &UserSpace, buf, count) {
        Ok(n) => n as isize,
        Err(e) => -(e.as_positive() as isize),
    }
}

/// `poll()` readiness of an event fd, called by the C shim.
///
/// # Safety
///
/// `priv_` is the private data of an open event file.
#[no_mangle]
pub unsafe extern "C" fn iommufd_rs_event_poll(priv_: *mut core::ffi::c_void) -> u32 {
    // SAFETY: by the function's contract.
    let ef = unsafe { crate::platform::file_owner_borrow::<EventFile>(priv_) };
    eventq::file_poll(&ef)
}

/// Release of an event fd, called by the C shim.
///
/// # Safety
///
/// `priv_` is the private data of an event file being released.
#[no_mangle]
pub unsafe extern "C" fn iommufd_rs_event_release(priv_: *mut core::ffi::c_void) {
    // SAFETY: by the function's contract.
    let ef = unsafe { crate::platform::file_owner_release::<EventFile>(priv_) };
    eventq::file_released(ef);
}
