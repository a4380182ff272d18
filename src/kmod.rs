//! Kernel glue: module init and the `/dev/iommu` misc device. Thin on
//! purpose: every decision is made by the portable dispatcher in `ucmd`.

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
    let owner = unsafe {
        crate::platform::access_file_release::<crate::drivers::mock::StAccessFile>(priv_)
    };
    crate::drivers::mock::access_file_released(owner);
}
