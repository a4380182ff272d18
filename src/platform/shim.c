// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd-rs C shim.
 *
 * The Rust `kernel` crate of Linux 7.3 does not wrap page pinning, locked
 * memory accounting, mm/task/user references or anonymous-inode files, and
 * several of those are static inlines that Rust cannot call. This file is
 * the smallest C layer over them. Each function is a thin wrapper: every
 * decision (what to pin, when to account, which errno userspace sees) is
 * made by the Rust code in src/platform/kernel.rs and the portable modules.
 */
#include <linux/anon_inodes.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/memfd.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/user.h>
#include <linux/slab.h>
#include <linux/wait.h>

/* Prototypes of the functions Rust calls (bindings live in platform/kernel.rs). */
struct iommufd_rs_source;
struct iommufd_rs_source *iommufd_rs_source_user(unsigned long base,
						 bool writable);
int iommufd_rs_source_file(int fd, u64 start, u64 length, bool writable,
			   struct iommufd_rs_source **out);
void iommufd_rs_source_free(struct iommufd_rs_source *src);
void iommufd_rs_source_set_mm_mode(struct iommufd_rs_source *src);
bool iommufd_rs_source_is_file(const struct iommufd_rs_source *src);
void *iommufd_rs_source_dmabuf(const struct iommufd_rs_source *src);
bool iommufd_rs_source_revoked(const struct iommufd_rs_source *src);
long iommufd_rs_source_pin(struct iommufd_rs_source *src, unsigned long index,
			   unsigned long npages, struct page **pages,
			   bool write);
void iommufd_rs_unpin_range(const struct iommufd_rs_source *src, u64 pfn,
			    unsigned long npages);
struct page *iommufd_rs_pfn_to_page(u64 pfn);
int iommufd_rs_source_account(struct iommufd_rs_source *src,
			      unsigned long npages, bool inc);
int iommufd_rs_owner_new(const struct iommufd_rs_source *src,
			 unsigned long npages, struct iommufd_rs_source **out);
void iommufd_rs_owner_commit(struct iommufd_rs_source *src,
			     struct iommufd_rs_source *owner,
			     unsigned long npages);
void iommufd_rs_owner_abort(struct iommufd_rs_source *owner,
			    unsigned long npages);
unsigned long iommufd_rs_page_pfn(struct page *page);
int iommufd_rs_user_page_info(unsigned long uaddr, u64 *pfn, int *pins);
void iommufd_rs_page_copy(struct page *page, unsigned int offset, void *buf,
			  unsigned int len, bool to_page);
int iommufd_rs_access_file(void *priv, struct file **filep);
void iommufd_rs_fd_install(int fd, struct file *file);
void iommufd_rs_fd_abort(int fd, struct file *file);
void *iommufd_rs_access_get(int fd, struct file **filep);
void iommufd_rs_file_put(struct file *file);
bool iommufd_rs_capable(int cap);
int iommufd_rs_dmabuf_create(size_t len, unsigned int open_flags);
int iommufd_rs_dmabuf_revoke(int fd, bool revoked, void **id);
int iommufd_rs_event_file(u32 kind, void *priv, struct file **filep,
			  void **wakerp);
void iommufd_rs_event_wake(void *waker);
void *iommufd_rs_pages_alloc(u32 order);
void iommufd_rs_pages_free(void *va, u32 order);
u64 iommufd_rs_virt_to_pfn(void *va);
u64 iommufd_rs_direct_map_base(void);
u64 iommufd_rs_vma_offset(struct vm_area_struct *vma);
int iommufd_rs_vma_check(struct vm_area_struct *vma, u64 *len);
int iommufd_rs_vma_remap(struct vm_area_struct *vma, u64 pfn, u64 len,
			 atomic_t *users);

/* The mock dma-buf exporter and importer below use the dma-buf core. */
MODULE_IMPORT_NS("DMA_BUF");

/* Accounting modes, as upstream's IOPT_PAGES_ACCOUNT_*. */
enum {
	IOMMUFD_RS_ACCOUNT_NONE = 0,
	IOMMUFD_RS_ACCOUNT_USER = 1,
	IOMMUFD_RS_ACCOUNT_MM = 2,
};

/*
 * Where pinned pages come from and who pays for them: the mm, task and user
 * of the process that mapped them (all referenced), plus the memfd for file
 * mappings. Page index i is at base + i * PAGE_SIZE (a user VA or a file
 * offset).
 */
struct iommufd_rs_source {
	struct mm_struct *mm;
	struct task_struct *task;
	struct user_struct *user;
	struct file *file;
	struct dma_buf *dmabuf;
	unsigned long base;
	int account_mode;
	bool writable;
};

/* Takes references on current's mm, group leader and user. */
static void source_take_current(struct iommufd_rs_source *src)
{
	src->mm = current->mm;
	mmgrab(src->mm);
	src->task = current->group_leader;
	get_task_struct(src->task);
	src->user = get_uid(current_user());
	src->account_mode = capable(CAP_IPC_LOCK) ? IOMMUFD_RS_ACCOUNT_NONE :
						    IOMMUFD_RS_ACCOUNT_USER;
}

/*
 * A source for user memory of the calling process. @base is page aligned.
 * Returns NULL without memory or without an mm (kernel threads).
 */
struct iommufd_rs_source *iommufd_rs_source_user(unsigned long base,
						 bool writable)
{
	struct iommufd_rs_source *src;

	if (!current->mm)
		return NULL;
	src = kzalloc_obj(*src, GFP_KERNEL_ACCOUNT);
	if (!src)
		return NULL;
	source_take_current(src);
	src->base = base;
	src->writable = writable;
	return src;
}

/* The mock dma-buf exporter's buffer (IOMMU_TEST_OP_DMABUF_GET). */
struct mock_dmabuf {
	void *memory;
	size_t length;
	bool revoked;
};

static const struct dma_buf_ops mock_dmabuf_ops;

/*
 * A source for the file behind @fd, mapping bytes @start..@start+@length:
 * a dma-buf of the mock exporter (never pinned: its memory is the
 * exporter's; -ENODEV while revoked, -EINVAL past its end, -EOPNOTSUPP for
 * other exporters) or any other file, whose type is checked when pinning
 * (memfd_pin_folios() refuses non-memfds). Returns 0 or -errno.
 */
int iommufd_rs_source_file(int fd, u64 start, u64 length, bool writable,
			   struct iommufd_rs_source **out)
{
	struct iommufd_rs_source *src;
	struct dma_buf *dmabuf;
	struct file *file = NULL;
	int rc;

	dmabuf = dma_buf_get(fd);
	if (!IS_ERR(dmabuf)) {
		struct mock_dmabuf *priv = dmabuf->priv;

		rc = 0;
		if (dmabuf->ops != &mock_dmabuf_ops)
			rc = -EOPNOTSUPP;
		else if (READ_ONCE(priv->revoked))
			rc = -ENODEV;
		else if (start >= priv->length || length > priv->length - start)
			rc = -EINVAL;
		if (rc) {
			dma_buf_put(dmabuf);
			return rc;
		}
	} else {
		dmabuf = NULL;
		file = fget(fd);
		if (!file)
			return -EBADF;
	}
	src = kzalloc_obj(*src, GFP_KERNEL_ACCOUNT);
	if (!src) {
		if (file)
			fput(file);
		if (dmabuf)
			dma_buf_put(dmabuf);
		return -ENOMEM;
	}
	source_take_current(src);
	src->file = file;
	src->dmabuf = dmabuf;
	if (dmabuf)
		src->account_mode = IOMMUFD_RS_ACCOUNT_NONE;
	src->base = ALIGN_DOWN(start, PAGE_SIZE);
	src->writable = writable;
	*out = src;
	return 0;
}

/* Drops every reference the source holds and frees it. */
void iommufd_rs_source_free(struct iommufd_rs_source *src)
{
	if (src->file)
		fput(src->file);
	if (src->dmabuf)
		dma_buf_put(src->dmabuf);
	free_uid(src->user);
	put_task_struct(src->task);
	mmdrop(src->mm);
	kfree(src);
}

/* Upgrades USER accounting to VFIO-style MM accounting (ctx in MM mode). */
void iommufd_rs_source_set_mm_mode(struct iommufd_rs_source *src)
{
	if (src->account_mode == IOMMUFD_RS_ACCOUNT_USER)
		src->account_mode = IOMMUFD_RS_ACCOUNT_MM;
}

/* True if the source is a file (memfd or dma-buf) rather than user memory. */
bool iommufd_rs_source_is_file(const struct iommufd_rs_source *src)
{
	return src->file || src->dmabuf;
}

/* The dma-buf behind the source (an identity for revoke), or NULL. */
void *iommufd_rs_source_dmabuf(const struct iommufd_rs_source *src)
{
	return src->dmabuf;
}

/* True while the source's dma-buf is revoked by its exporter. */
bool iommufd_rs_source_revoked(const struct iommufd_rs_source *src)
{
	struct mock_dmabuf *priv;

	if (!src->dmabuf)
		return false;
	priv = src->dmabuf->priv;
	return READ_ONCE(priv->revoked);
}

/* Pins @npages folio pages of a memfd from page @index into @pages. */
static long pin_file(struct iommufd_rs_source *src, unsigned long index,
		     unsigned long npages, struct page **pages)
{
	loff_t start = src->base + index * PAGE_SIZE;
	loff_t end = start + npages * PAGE_SIZE - 1;
	unsigned long done = 0;
	struct folio **folios;
	pgoff_t offset;
	long nfolios, i;

	folios = kmalloc_array(npages, sizeof(*folios), GFP_KERNEL_ACCOUNT);
	if (!folios)
		return -ENOMEM;
	nfolios = memfd_pin_folios(src->file, start, end, folios, npages,
				   &offset);
	if (nfolios <= 0) {
		kfree(folios);
		return nfolios ? nfolios : -EFAULT;
	}
	offset >>= PAGE_SHIFT;
	for (i = 0; i < nfolios && done < npages; i++) {
		struct folio *folio = folios[i];
		unsigned long nr = min(folio_nr_pages(folio) - offset,
				       npages - done);

		/* One pin per page, as for GUP, so unpin_user_pages() fits. */
		if (nr > 1 && folio_add_pins(folio, nr - 1)) {
			unpin_user_pages(pages, done);
			for (; i < nfolios; i++)
				unpin_folio(folios[i]);
			kfree(folios);
			return -ENOMEM;
		}
		while (nr--)
			pages[done++] = folio_page(folio, offset++);
		offset = 0;
	}
	/* Folios past what fits in @pages (none expected) are released. */
	for (; i < nfolios; i++)
		unpin_folio(folios[i]);
	kfree(folios);
	return done;
}

/*
 * Pins up to @npages pages from page @index with FOLL_LONGTERM (and
 * FOLL_WRITE if @write). Uses the fast path when the source mm is
 * current's, else pins remotely while the mm still has users (-EFAULT once
 * the process is gone). Returns the number pinned (> 0) or -errno.
 */
long iommufd_rs_source_pin(struct iommufd_rs_source *src, unsigned long index,
			   unsigned long npages, struct page **pages,
			   bool write)
{
	unsigned int flags = FOLL_LONGTERM | (write ? FOLL_WRITE : 0);
	unsigned long uaddr = src->base + index * PAGE_SIZE;
	int locked = 1;
	long rc;

	if (src->dmabuf) {
		struct mock_dmabuf *priv = src->dmabuf->priv;
		unsigned long i;

		/* Exporter memory: nothing to pin, only its pages to report. */
		if (READ_ONCE(priv->revoked))
			return -ENODEV;
		for (i = 0; i != npages; i++)
			pages[i] = virt_to_page(priv->memory +
						(src->base + (index + i) * PAGE_SIZE));
		return npages;
	}
	if (src->file)
		return pin_file(src, index, npages, pages);
	if (src->mm == current->mm) {
		rc = pin_user_pages_fast(uaddr, npages, flags, pages);
	} else {
		if (!mmget_not_zero(src->mm))
			return -EFAULT;
		mmap_read_lock(src->mm);
		rc = pin_user_pages_remote(src->mm, uaddr, npages, flags, pages,
					   &locked);
		if (locked)
			mmap_read_unlock(src->mm);
		mmput(src->mm);
	}
	return rc ? rc : -EFAULT;
}

/*
 * Releases one pin on each of @npages physically contiguous pages from @pfn,
 * taken by iommufd_rs_source_pin() (dma-buf pages hold none). The range
 * form walks folios, so a huge folio is released in one step; writable
 * sources mark the pages dirty, as a device may have written them.
 */
void iommufd_rs_unpin_range(const struct iommufd_rs_source *src, u64 pfn,
			    unsigned long npages)
{
	if (!src->dmabuf)
		unpin_user_page_range_dirty_lock(pfn_to_page(pfn), npages,
						 src->writable);
}

/* The page of a pinned pfn (Rust keeps pages of a run as one address). */
struct page *iommufd_rs_pfn_to_page(u64 pfn)
{
	return pfn_to_page(pfn);
}

/* io_uring-style accounting against the user's RLIMIT_MEMLOCK. */
static int account_user(struct iommufd_rs_source *src, unsigned long npages,
			bool inc)
{
	unsigned long limit, cur, new;

	if (!inc) {
		atomic_long_sub(npages, &src->user->locked_vm);
		return 0;
	}
	limit = task_rlimit(src->task, RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	cur = atomic_long_read(&src->user->locked_vm);
	do {
		new = cur + npages;
		if (new > limit)
			return -ENOMEM;
	} while (!atomic_long_try_cmpxchg(&src->user->locked_vm, &cur, new));
	return 0;
}

/* VFIO-style accounting in the mm's locked_vm (VmLck). */
static int account_mm(struct iommufd_rs_source *src, unsigned long npages,
		      bool inc)
{
	bool put = false;
	int rc;

	if (src->mm != current->mm) {
		if (!mmget_not_zero(src->mm))
			return inc ? -EINVAL : 0;
		put = true;
	}
	mmap_write_lock(src->mm);
	rc = __account_locked_vm(src->mm, npages, inc, src->task, false);
	mmap_write_unlock(src->mm);
	if (put)
		mmput(src->mm);
	return rc;
}

/*
 * Charges (@inc) or uncharges @npages newly (un)pinned pages by the source's
 * mode and always in the mm's pinned_vm (VmPin). Returns 0 or -ENOMEM when
 * RLIMIT_MEMLOCK would be exceeded.
 */
int iommufd_rs_source_account(struct iommufd_rs_source *src,
			      unsigned long npages, bool inc)
{
	int rc = 0;

	if (src->dmabuf)
		return 0;
	if (src->account_mode == IOMMUFD_RS_ACCOUNT_USER)
		rc = account_user(src, npages, inc);
	else if (src->account_mode == IOMMUFD_RS_ACCOUNT_MM)
		rc = account_mm(src, npages, inc);
	if (rc)
		return rc;
	if (inc)
		atomic64_add(npages, &src->mm->pinned_vm);
	else
		atomic64_sub(npages, &src->mm->pinned_vm);
	return 0;
}

/*
 * IOMMU_IOAS_CHANGE_PROCESS, step 1: a new owner (current's mm, group
 * leader and user) for @src, charged @npages in @src's mode. Nothing about
 * @src changes yet. Returns 0 or -errno (-ENOMEM over RLIMIT_MEMLOCK).
 */
int iommufd_rs_owner_new(const struct iommufd_rs_source *src,
			 unsigned long npages, struct iommufd_rs_source **out)
{
	struct iommufd_rs_source *owner;
	int rc;

	if (!current->mm)
		return -EINVAL;
	owner = kzalloc_obj(*owner, GFP_KERNEL_ACCOUNT);
	if (!owner)
		return -ENOMEM;
	source_take_current(owner);
	owner->account_mode = src->account_mode;
	rc = npages ? iommufd_rs_source_account(owner, npages, true) : 0;
	if (rc) {
		iommufd_rs_source_free(owner);
		return rc;
	}
	*out = owner;
	return 0;
}

/*
 * Step 2 (commit): @src and @owner swap owners, then the old owner (now in
 * @owner) is uncharged @npages and freed.
 */
void iommufd_rs_owner_commit(struct iommufd_rs_source *src,
			     struct iommufd_rs_source *owner,
			     unsigned long npages)
{
	swap(src->mm, owner->mm);
	swap(src->task, owner->task);
	swap(src->user, owner->user);
	if (npages)
		iommufd_rs_source_account(owner, npages, false);
	iommufd_rs_source_free(owner);
}

/* Step 2 (abort): drops a new owner, uncharging its @npages. */
void iommufd_rs_owner_abort(struct iommufd_rs_source *owner,
			    unsigned long npages)
{
	if (npages)
		iommufd_rs_source_account(owner, npages, false);
	iommufd_rs_source_free(owner);
}

/* The page frame number of a pinned page. */
unsigned long iommufd_rs_page_pfn(struct page *page)
{
	return page_to_pfn(page);
}

/*
 * Looks at the page currently mapped at user address @uaddr of current:
 * its pfn and its FOLL_PIN count (-1 for compound pages, whose count is not
 * per page). Takes and drops a plain reference. Returns 0 or -errno.
 */
int iommufd_rs_user_page_info(unsigned long uaddr, u64 *pfn, int *pins)
{
	struct page *page;
	long rc;

	rc = get_user_pages_fast(uaddr & PAGE_MASK, 1, 0, &page);
	if (rc < 0)
		return rc;
	if (rc != 1)
		return -EFAULT;
	*pfn = page_to_pfn(page);
	*pins = PageCompound(page) ? -1 :
				     page_ref_count(page) / GUP_PIN_COUNTING_BIAS;
	put_page(page);
	return 0;
}

/* Copies @len bytes between @buf and a pinned page at @offset. */
void iommufd_rs_page_copy(struct page *page, unsigned int offset, void *buf,
			  unsigned int len, bool to_page)
{
	if (to_page)
		memcpy_to_page(page, offset, buf, len);
	else
		memcpy_from_page(buf, page, offset, len);
}

/* Called when an access file is released; implemented in Rust. */
void iommufd_rs_access_release(void *priv);

static int access_fops_release(struct inode *inode, struct file *file)
{
	iommufd_rs_access_release(file->private_data);
	return 0;
}

static const struct file_operations access_fops = {
	.owner = THIS_MODULE,
	.release = access_fops_release,
};

/*
 * Creates the anonymous file of a selftest access object ("[iommufd_test_
 * staccess]") carrying @priv, and reserves an O_CLOEXEC fd for it. The fd
 * is installed with iommufd_rs_fd_install() once the ioctl cannot fail any
 * more, or released with iommufd_rs_fd_abort(), which also drops the file
 * (and so calls the release hook with @priv). Returns the fd or -errno.
 */
int iommufd_rs_access_file(void *priv, struct file **filep)
{
	struct file *file;
	int fd;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return fd;
	file = anon_inode_getfile("[iommufd_test_staccess]", &access_fops,
				  priv, O_RDWR);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		return PTR_ERR(file);
	}
	*filep = file;
	return fd;
}

/* Publishes a file created by iommufd_rs_access_file(). */
void iommufd_rs_fd_install(int fd, struct file *file)
{
	fd_install(fd, file);
}

/* Undoes iommufd_rs_access_file(): frees the fd, drops the file. */
void iommufd_rs_fd_abort(int fd, struct file *file)
{
	put_unused_fd(fd);
	fput(file);
}

/*
 * Looks up the access file behind @fd: returns its private data and a file
 * reference in @filep (drop with fput()), or NULL if @fd is not one.
 */
void *iommufd_rs_access_get(int fd, struct file **filep)
{
	struct file *file = fget(fd);

	if (!file)
		return NULL;
	if (file->f_op != &access_fops) {
		fput(file);
		return NULL;
	}
	*filep = file;
	return file->private_data;
}

/* Drops a file reference taken by iommufd_rs_access_get(). */
void iommufd_rs_file_put(struct file *file)
{
	fput(file);
}

/* capable() for the capabilities the uAPI checks. */
bool iommufd_rs_capable(int cap)
{
	return capable(cap);
}

/* The mock exporter refuses DMA mapping: only iommufd imports its buffers. */
static int mock_dmabuf_attach(struct dma_buf *dmabuf,
			      struct dma_buf_attachment *attachment)
{
	return 0;
}

/* Nothing to undo for an attachment. */
static void mock_dmabuf_detach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attachment)
{
}

/* No scatterlist mappings for other importers. */
static struct sg_table *mock_dmabuf_map(struct dma_buf_attachment *attachment,
					enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);
}

/* Counterpart of mock_dmabuf_map(); never reached. */
static void mock_dmabuf_unmap(struct dma_buf_attachment *attachment,
			      struct sg_table *sgt,
			      enum dma_data_direction dir)
{
}

/* The last reference went: free the buffer. */
static void mock_dmabuf_release(struct dma_buf *dmabuf)
{
	struct mock_dmabuf *priv = dmabuf->priv;

	kfree(priv->memory);
	kfree(priv);
}

static const struct dma_buf_ops mock_dmabuf_ops = {
	.attach = mock_dmabuf_attach,
	.detach = mock_dmabuf_detach,
	.map_dma_buf = mock_dmabuf_map,
	.unmap_dma_buf = mock_dmabuf_unmap,
	.release = mock_dmabuf_release,
};

/*
 * IOMMU_TEST_OP_DMABUF_GET: exports @len bytes (rounded up to pages, at
 * most 512 pages) of zeroed kernel memory as a dma-buf and returns its new
 * fd (opened with @open_flags), or -errno.
 */
int iommufd_rs_dmabuf_create(size_t len, unsigned int open_flags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct mock_dmabuf *priv;
	struct dma_buf *dmabuf;
	int fd;

	len = ALIGN(len, PAGE_SIZE);
	if (len == 0 || len > PAGE_SIZE * 512)
		return -EINVAL;
	priv = kzalloc_obj(*priv, GFP_KERNEL_ACCOUNT);
	if (!priv)
		return -ENOMEM;
	priv->length = len;
	priv->memory = kzalloc(len, GFP_KERNEL_ACCOUNT);
	if (!priv->memory) {
		kfree(priv);
		return -ENOMEM;
	}
	exp_info.ops = &mock_dmabuf_ops;
	exp_info.size = len;
	exp_info.flags = open_flags;
	exp_info.priv = priv;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		kfree(priv->memory);
		kfree(priv);
		return PTR_ERR(dmabuf);
	}
	fd = dma_buf_fd(dmabuf, open_flags);
	if (fd < 0)
		dma_buf_put(dmabuf);
	return fd;
}

/*
 * IOMMU_TEST_OP_DMABUF_REVOKE: sets the revoked state of a mock dma-buf and
 * returns its identity in @id (to find the mappings that must go), or
 * -EOPNOTSUPP for other dma-bufs.
 */
int iommufd_rs_dmabuf_revoke(int fd, bool revoked, void **id)
{
	struct dma_buf *dmabuf = dma_buf_get(fd);
	struct mock_dmabuf *priv;

	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	if (dmabuf->ops != &mock_dmabuf_ops) {
		dma_buf_put(dmabuf);
		return -EOPNOTSUPP;
	}
	priv = dmabuf->priv;
	dma_resv_lock(dmabuf->resv, NULL);
	WRITE_ONCE(priv->revoked, revoked);
	dma_resv_unlock(dmabuf->resv);
	*id = dmabuf;
	dma_buf_put(dmabuf);
	return 0;
}

/* Event files (FAULT and vEVENTQ fds); the queues themselves are in Rust. */
ssize_t iommufd_rs_event_read(void *priv, u64 ubuf, size_t count);
ssize_t iommufd_rs_event_write(void *priv, u64 ubuf, size_t count);
unsigned int iommufd_rs_event_poll(void *priv);
void iommufd_rs_event_release(void *priv);

/* What an event file carries: its wait queue and the Rust owner. */
struct iommufd_rs_evfile {
	wait_queue_head_t wq;
	void *priv;
};

/* read(): whole records at offset 0 only (-ESPIPE otherwise). */
static ssize_t evfile_read(struct file *file, char __user *buf, size_t count,
			   loff_t *ppos)
{
	struct iommufd_rs_evfile *ev = file->private_data;

	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_event_read(ev->priv, (u64)(uintptr_t)buf, count);
}

/* write(): page responses of a FAULT fd, at offset 0 only. */
static ssize_t evfile_write(struct file *file, const char __user *buf,
			    size_t count, loff_t *ppos)
{
	struct iommufd_rs_evfile *ev = file->private_data;

	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_event_write(ev->priv, (u64)(uintptr_t)buf, count);
}

/* poll(): registers on the queue, then asks Rust what is ready. */
static __poll_t evfile_poll(struct file *file, struct poll_table_struct *wait)
{
	struct iommufd_rs_evfile *ev = file->private_data;

	poll_wait(file, &ev->wq, wait);
	return (__force __poll_t)iommufd_rs_event_poll(ev->priv);
}

/* release(): Rust forgets the waker and drops its owner, then we free. */
static int evfile_release(struct inode *inode, struct file *file)
{
	struct iommufd_rs_evfile *ev = file->private_data;

	iommufd_rs_event_release(ev->priv);
	kfree(ev);
	return 0;
}

static const struct file_operations fault_fops = {
	.owner = THIS_MODULE,
	.read = evfile_read,
	.write = evfile_write,
	.poll = evfile_poll,
	.release = evfile_release,
	.llseek = noop_llseek,
};

static const struct file_operations veventq_fops = {
	.owner = THIS_MODULE,
	.read = evfile_read,
	.poll = evfile_poll,
	.release = evfile_release,
	.llseek = noop_llseek,
};

/*
 * Creates an event file carrying @priv: @kind 0 is a FAULT fd
 * ("[iommufd-pgfault]", read/write/poll), 1 a vEVENTQ fd
 * ("[iommufd-viommu-event]", read/poll). Reserves an O_CLOEXEC fd for it,
 * installed or aborted like access files; @wakerp receives the wait queue
 * for iommufd_rs_event_wake(). Returns the fd or -errno.
 */
int iommufd_rs_event_file(u32 kind, void *priv, struct file **filep,
			  void **wakerp)
{
	const struct file_operations *fops = kind ? &veventq_fops : &fault_fops;
	const char *name = kind ? "[iommufd-viommu-event]" : "[iommufd-pgfault]";
	struct iommufd_rs_evfile *ev;
	struct file *file;
	int fd;

	ev = kzalloc(sizeof(*ev), GFP_KERNEL_ACCOUNT);
	if (!ev)
		return -ENOMEM;
	init_waitqueue_head(&ev->wq);
	ev->priv = priv;
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		kfree(ev);
		return fd;
	}
	file = anon_inode_getfile(name, fops, ev, O_RDWR);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		kfree(ev);
		return PTR_ERR(file);
	}
	*filep = file;
	*wakerp = &ev->wq;
	return fd;
}

/* Wakes readers and pollers of an event file (@waker from above). */
void iommufd_rs_event_wake(void *waker)
{
	wake_up_interruptible((wait_queue_head_t *)waker);
}

/* Zeroed, physically contiguous pages of @order for mmap regions. */
void *iommufd_rs_pages_alloc(u32 order)
{
	return (void *)__get_free_pages(GFP_KERNEL_ACCOUNT | __GFP_ZERO, order);
}

/* Frees pages from iommufd_rs_pages_alloc(). */
void iommufd_rs_pages_free(void *va, u32 order)
{
	free_pages((unsigned long)va, order);
}

/* The page frame of a direct-map address. */
u64 iommufd_rs_virt_to_pfn(void *va)
{
	return page_to_pfn(virt_to_page(va));
}

/*
 * The direct map's virtual base (__va(0)): page-table walks turn table
 * physical addresses back into pointers with one addition instead of a
 * call per level.
 */
u64 iommufd_rs_direct_map_base(void)
{
	return (u64)(unsigned long)__va(0);
}

/*
 * VMAs of /dev/iommu mmap regions hold a reference on the owning object's
 * `users` counter (a Rust AtomicU32, the same representation as atomic_t):
 * taken by the mmap and by every VMA copy or split, dropped on close.
 */
static void iommufd_rs_vma_open(struct vm_area_struct *vma)
{
	atomic_inc((atomic_t *)vma->vm_private_data);
}

static void iommufd_rs_vma_close(struct vm_area_struct *vma)
{
	atomic_dec((atomic_t *)vma->vm_private_data);
}

static const struct vm_operations_struct iommufd_rs_vma_ops = {
	.open = iommufd_rs_vma_open,
	.close = iommufd_rs_vma_close,
};

/* The mmap offset of @vma in bytes. */
u64 iommufd_rs_vma_offset(struct vm_area_struct *vma)
{
	return (u64)vma->vm_pgoff << PAGE_SHIFT;
}

/*
 * Checks an mmap of /dev/iommu the way upstream does: page-aligned length
 * (-EINVAL), shared (-EINVAL), not executable (-EPERM). Returns 0 and the
 * length in @len.
 */
int iommufd_rs_vma_check(struct vm_area_struct *vma, u64 *len)
{
	u64 length = vma->vm_end - vma->vm_start;

	if (!PAGE_ALIGNED(length))
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	*len = length;
	return 0;
}

/*
 * Maps @len bytes of frames from @pfn into @vma, uncached, as an I/O
 * mapping that fork does not copy. @users was incremented by the caller
 * for this VMA; on failure it is dropped here.
 */
int iommufd_rs_vma_remap(struct vm_area_struct *vma, u64 pfn, u64 len,
			 atomic_t *users)
{
	int rc;

	vma->vm_pgoff = 0;
	vma->vm_private_data = users;
	vma->vm_ops = &iommufd_rs_vma_ops;
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_IO);
	rc = io_remap_pfn_range(vma, vma->vm_start, pfn, len,
				vma->vm_page_prot);
	if (rc)
		atomic_dec(users);
	return rc;
}
