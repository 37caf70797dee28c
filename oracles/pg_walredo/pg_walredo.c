/*-------------------------------------------------------------------------
 *
 * pg_walredo.c
 *		Make stock PostgreSQL (15 to 18) serve the wal-redo protocol (as Neon's
 *		pageserver speaks it) over stdin/stdout.
 *
 * Started as
 *
 *	postgres --single -D <scratch datadir>
 *		-c session_preload_libraries=<abs path>/pg_walredo.so
 *		-c pg_walredo.serve=on -c shared_buffers=2MB -c fsync=off postgres
 *
 * the library's _PG_init runs from process_session_preload_libraries(),
 * after InitPostgres, takes over the process and never returns.  Without
 * pg_walredo.serve=on it only defines its GUCs and does nothing.
 *
 * Each request rebuilds ONE target block:
 *
 *	B <tag>				begin: remember the target, make its file reach it
 *	P <tag><page>		optional base page
 *	A <end lsn><rec>	one WAL record, replayed by its rmgr's own redo routine
 *	G <tag>				reply with the 8192-byte page, forget everything
 *	H <8192 bytes>		ping: reply with the same 8192 bytes
 *
 * Restricting redo to the target block works by rewriting the relation
 * (never the block number) of every decoded block reference before the redo
 * routine runs:
 *
 *	- the target goes to a private database (PGWR_TARGET_DB), so it never
 *	  meets the scratch cluster's own files;
 *	- every other block goes to a second private database (PGWR_SCRATCH_DB)
 *	  where its page is pre-created in a buffer with a maximal pd_lsn and not
 *	  dirtied: XLogReadBufferForRedo answers BLK_DONE and the routine leaves
 *	  it alone.  Full-page images on those blocks still restore (XLOG_FPI
 *	  insists on BLK_RESTORED); init-fork blocks there are moved to the main
 *	  fork so nothing calls FlushOneBuffer.  So is an init-fork target, in
 *	  the private database (same page, no write past our WAL).
 *	- XLOG_FPI and XLOG_FPI_FOR_HINT records restore each of their blocks on
 *	  its own (xlog_redo's loop), so they are narrowed to the target's block
 *	  reference: a CREATE INDEX logs its pages 32 to a record, and restoring
 *	  all 32 images for each of the 32 targets was most of the server's work.
 *	- visibility-map targets: heap records clear VM bits without naming the
 *	  VM block.  For a VM target, heap/heap2 block references to the main fork
 *	  of the target's relation go to the private database (with a maximal-LSN
 *	  page and their images not applied), so visibilitymap_pin/clear, which
 *	  derive the VM buffer from the heap block's relation, land on the target.
 *
 * A dirty buffer is never written: writing one would XLogFlush past the end
 * of the scratch cluster's WAL.  G and every clean exit drop both private
 * databases' buffers, and side buffers are dropped before they could fill
 * shared buffers (PGWR_SIDE_BUDGET); any error ends the process with _exit(1)
 * before the shutdown checkpoint can write anything.
 *
 * See README.md for the details and the reasoning.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/heapam_xlog.h"
#include "access/rmgr.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "access/xlogrecovery.h"
#include "access/xlogutils.h"
#include "catalog/pg_tablespace_d.h"
#include "common/relpath.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "port/pg_crc32c.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/smgr.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"

PG_MODULE_MAGIC;

/*
 * One source for PostgreSQL 15 to 18.  Where the server's internals were
 * renamed, the names below pick the major's own:
 *
 *	16: RelFileNode became RelFileLocator (spcOid, dbOid, relNumber), the
 *		decoded block reference's rnode became rlocator, and
 *		DropRelFileNodeBuffers became DropRelationBuffers (commit b0a55e43).
 *	17: backends are named by ProcNumber (INVALID_PROC_NUMBER) instead of
 *		BackendId (commit 024c5211); CreateWaitEventSet takes a resource
 *		owner instead of a memory context (commit 50c67c20).
 *	18: pg_attribute_noreturn() gave way to pg_noreturn before the
 *		declaration (commit 3691edfa).
 */
#if PG_VERSION_NUM >= 160000
typedef RelFileLocator PgwrLocator;
#define PGWR_SPC			spcOid
#define PGWR_DB				dbOid
#define PGWR_REL			relNumber
#define PGWR_BLK_LOCATOR	rlocator
#define PgwrLocatorEquals	RelFileLocatorEquals
#define PgwrDropRelationBuffers DropRelationBuffers
#else
typedef RelFileNode PgwrLocator;
#define PGWR_SPC			spcNode
#define PGWR_DB				dbNode
#define PGWR_REL			relNode
#define PGWR_BLK_LOCATOR	rnode
#define PgwrLocatorEquals	RelFileNodeEquals
#define PgwrDropRelationBuffers DropRelFileNodeBuffers
#endif

#if PG_VERSION_NUM >= 170000
#define PGWR_INVALID_BACKEND INVALID_PROC_NUMBER
#else
#define PGWR_INVALID_BACKEND InvalidBackendId
#endif

void		_PG_init(void);

/* Private databases: far from any OID a scratch cluster hands out. */
#define PGWR_TARGET_DB		((Oid) 4000000000U)
#define PGWR_SCRATCH_DB		((Oid) 4000000001U)

/* visibilitymap.c keeps these private; the layout is fixed for BLCKSZ. */
#define PGWR_VM_MAPSIZE		(BLCKSZ - MAXALIGN(SizeOfPageHeaderData))
#define PGWR_VM_HEAPBLOCKS_PER_PAGE	(PGWR_VM_MAPSIZE * 4)
#define PGWR_HEAPBLK_TO_MAPBLOCK(x) ((x) / PGWR_VM_HEAPBLOCKS_PER_PAGE)

/* An LSN no record can reach: XLogReadBufferForRedo says BLK_DONE. */
#define PGWR_DONE_LSN		((XLogRecPtr) PG_UINT64_MAX)

/*
 * Side buffers (every buffer but the target's) are dropped once the records
 * replayed since the last drop may have taken this many buffers: each block
 * reference one, plus PGWR_IMPLICIT_BUFFERS for pages redo reaches without a
 * block reference (the free-space map page, visibility-map pages).  Far below
 * what a 2 MB shared_buffers leaves free, so no dirty buffer is ever evicted
 * (and written); dropping after every record scanned shared buffers twice per
 * record.
 */
#define PGWR_SIDE_BUDGET	64
#define PGWR_IMPLICIT_BUFFERS	4

/* Message framing: type byte, int32 BE length that counts itself. */
#define PGWR_HDR			5
#define PGWR_TAG_NEON		17	/* forknum u8, spc, db, rel, blk u32 */
#define PGWR_TAG_OLD		20	/* spc, db, rel, forknum, blk u32 */
#define PGWR_MAX_MSG		((uint32) MaxAllocSize + 64)	/* a record is at most ~1 GB */
#define PGWR_INBUF_INIT		(1024 * 1024)

/* GUCs */
static bool pgwr_serve = false;
static bool pgwr_trace = false;

/* The target of the current request (as the client named it). */
typedef struct PgwrTag
{
	PgwrLocator rnode;
	ForkNumber	forknum;
	BlockNumber blkno;
} PgwrTag;

static bool in_request = false;
static PgwrTag target;
static PgwrLocator target_rnode;	/* where the target lives here */
static ForkNumber target_fork;	/* its fork here: main for an init-fork target */
static bool target_ready = false;	/* has a base page or an image/init */
static uint64 request_records = 0;
static int	side_buffers = 0;		/* buffers side pages may hold since the last drop */

/* Process state */
static int	reply_fd = -1;
static XLogReaderState *reader = NULL;
static MemoryContext record_cxt = NULL;
static WaitEventSet *stdin_wes = NULL;
static char *inbuf = NULL;
static Size inbuf_size = 0;
static Size inbuf_start = 0;
static Size inbuf_end = 0;
static PGAlignedBlock zero_block;

/* What the error context callback reports. */
static char cur_msg_type = 0;
static XLogRecPtr cur_end_lsn = InvalidXLogRecPtr;
static RmgrId cur_rmid = 0;
static uint8 cur_info = 0;
static bool cur_in_record = false;

#if PG_VERSION_NUM >= 180000
static pg_noreturn void pgwr_serve_forever(void);
#else
static void pgwr_serve_forever(void) pg_attribute_noreturn();
#endif

/*
 * Module load.  Only takes over when pg_walredo.serve is on, which the
 * client passes on the command line of a single-user backend.
 */
void
_PG_init(void)
{
	DefineCustomBoolVariable("pg_walredo.serve",
							 "Serve the wal-redo protocol on stdin/stdout (single-user mode only).",
							 NULL,
							 &pgwr_serve,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_walredo.trace",
							 "Log every protocol message to stderr.",
							 NULL,
							 &pgwr_trace,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("pg_walredo");

	if (!pgwr_serve)
		return;
	if (IsUnderPostmaster)
	{
		ereport(WARNING,
				(errmsg("pg_walredo.serve is ignored outside single-user mode")));
		return;
	}
	pgwr_serve_forever();
}

/* ---------------------------------------------------------------------
 * Errors and exit
 * ---------------------------------------------------------------------
 */

/*
 * Runs before ShutdownXLOG (before_shmem_exit callbacks run newest first).
 * On any abnormal exit leave at once, so the shutdown checkpoint never sees
 * our dirty buffers; on a clean exit throw them away first.
 */
static void
pgwr_exit_callback(int code, Datum arg)
{
	if (code != 0)
		_exit(code);
	DropDatabaseBuffers(PGWR_TARGET_DB);
	DropDatabaseBuffers(PGWR_SCRATCH_DB);
}

static const char *
pgwr_fork_name(ForkNumber forknum)
{
	if (forknum >= 0 && forknum <= MAX_FORKNUM)
		return forkNames[forknum];
	return "?";
}

static void
pgwr_error_callback(void *arg)
{
	if (cur_in_record)
	{
		const char *id = NULL;

		if (RmgrIdExists(cur_rmid) && GetRmgr(cur_rmid).rm_identify != NULL)
			id = GetRmgr(cur_rmid).rm_identify(cur_info);
		errcontext("wal-redo of record ending at %X/%X (rmgr %s, %s, info 0x%02X) "
				   "for target %u/%u/%u %s blk %u",
				   LSN_FORMAT_ARGS(cur_end_lsn),
				   RmgrIdExists(cur_rmid) ? GetRmgr(cur_rmid).rm_name : "?",
				   id ? id : "UNKNOWN", cur_info,
				   target.rnode.PGWR_SPC, target.rnode.PGWR_DB,
				   target.rnode.PGWR_REL, pgwr_fork_name(target.forknum),
				   target.blkno);
	}
	else if (cur_msg_type != 0)
		errcontext("wal-redo protocol message '%c'", cur_msg_type);
}

/* ---------------------------------------------------------------------
 * I/O
 * ---------------------------------------------------------------------
 */

static void
pgwr_write_all(const char *data, Size len)
{
	while (len > 0)
	{
		ssize_t		n = write(reply_fd, data, len);

		if (n > 0)
		{
			data += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
		{
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			/* only when stdin and stdout share one non-blocking socket */
			(void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_WRITEABLE,
									 reply_fd, -1L, WAIT_EVENT_CLIENT_WRITE);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write reply to stdout: %m")));
	}
}

/*
 * Read more of stdin into inbuf.  Returns false on EOF.  Waits on a
 * WaitEventSet (latch + fd 0), so SIGTERM and friends are noticed while idle.
 */
static bool
pgwr_fill_inbuf(Size need)
{
	/* make room: compact, then grow */
	if (inbuf_start > 0 && (inbuf_size - inbuf_end < need || inbuf_start == inbuf_end))
	{
		memmove(inbuf, inbuf + inbuf_start, inbuf_end - inbuf_start);
		inbuf_end -= inbuf_start;
		inbuf_start = 0;
	}
	if (inbuf_size - inbuf_end < need)
	{
		Size		newsize = inbuf_size;

		while (newsize - inbuf_end < need)
			newsize *= 2;
		inbuf = repalloc_huge(inbuf, newsize);
		inbuf_size = newsize;
	}

	for (;;)
	{
		ssize_t		n;

		CHECK_FOR_INTERRUPTS();
		n = read(STDIN_FILENO, inbuf + inbuf_end, inbuf_size - inbuf_end);
		if (n > 0)
		{
			inbuf_end += n;
			return true;
		}
		if (n == 0)
			return false;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
		{
			WaitEvent	ev;

			(void) WaitEventSetWait(stdin_wes, -1L, &ev, 1, WAIT_EVENT_CLIENT_READ);
			ResetLatch(MyLatch);
			continue;
		}
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read from stdin: %m")));
	}
}

static inline uint32
pgwr_get_u32(const char *p)
{
	uint32		v;

	memcpy(&v, p, sizeof(v));
	return pg_ntoh32(v);
}

static inline uint64
pgwr_get_u64(const char *p)
{
	uint64		v;

	memcpy(&v, p, sizeof(v));
	return pg_ntoh64(v);
}

/*
 * A BufferTag in either layout; which one is told by its length (17 bytes:
 * current Neon, forknum first as u8 then 4 x u32, so a 'B' message's length
 * field says 21; 20 bytes: old, 5 x u32 with forknum 4th, length field 24).
 */
static PgwrTag
pgwr_parse_tag(const char *p, Size len)
{
	PgwrTag		tag;
	uint32		fork;

	if (len == PGWR_TAG_NEON)
	{
		fork = (uint8) p[0];
		tag.rnode.PGWR_SPC = pgwr_get_u32(p + 1);
		tag.rnode.PGWR_DB = pgwr_get_u32(p + 5);
		tag.rnode.PGWR_REL = pgwr_get_u32(p + 9);
		tag.blkno = pgwr_get_u32(p + 13);
	}
	else if (len == PGWR_TAG_OLD)
	{
		tag.rnode.PGWR_SPC = pgwr_get_u32(p);
		tag.rnode.PGWR_DB = pgwr_get_u32(p + 4);
		tag.rnode.PGWR_REL = pgwr_get_u32(p + 8);
		fork = pgwr_get_u32(p + 12);
		tag.blkno = pgwr_get_u32(p + 16);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("buffer tag of %zu bytes (expected %d or %d)",
						len, PGWR_TAG_NEON, PGWR_TAG_OLD)));

	if (fork > MAX_FORKNUM)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid fork number %u in buffer tag", fork)));
	if (tag.blkno == InvalidBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid block number in buffer tag")));
	tag.forknum = (ForkNumber) fork;
	return tag;
}

static bool
pgwr_tag_equal(const PgwrTag *a, const PgwrTag *b)
{
	return PgwrLocatorEquals(a->rnode, b->rnode) &&
		a->forknum == b->forknum && a->blkno == b->blkno;
}

static void
pgwr_require_target(const PgwrTag *tag, char msgtype)
{
	if (!in_request)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'%c' message outside a request (no 'B' before it)", msgtype)));
	if (!pgwr_tag_equal(tag, &target))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'%c' names %u/%u/%u %s blk %u but the request began for %u/%u/%u %s blk %u",
						msgtype,
						tag->rnode.PGWR_SPC, tag->rnode.PGWR_DB, tag->rnode.PGWR_REL,
						pgwr_fork_name(tag->forknum), tag->blkno,
						target.rnode.PGWR_SPC, target.rnode.PGWR_DB, target.rnode.PGWR_REL,
						pgwr_fork_name(target.forknum), target.blkno)));
}

/* ---------------------------------------------------------------------
 * Buffers and files in the private databases
 * ---------------------------------------------------------------------
 */

static PgwrLocator
pgwr_private_rnode(Oid db, const PgwrLocator *orig)
{
	PgwrLocator r;

	r.PGWR_SPC = DEFAULTTABLESPACE_OID;
	r.PGWR_DB = db;
	r.PGWR_REL = orig->PGWR_REL;
	return r;
}

/*
 * Make the fork file exist and reach blkno (a sparse extension), so that
 * XLogReadBufferExtended finds the block instead of calling it missing.
 * With zero_it, also make the block read back as zeros.
 */
static void
pgwr_ensure_block(PgwrLocator rnode, ForkNumber forknum, BlockNumber blkno, bool zero_it)
{
	SMgrRelation smgr = smgropen(rnode, PGWR_INVALID_BACKEND);
	BlockNumber nblocks;

	smgrcreate(smgr, forknum, true);
	nblocks = smgrnblocks(smgr, forknum);
	if (nblocks <= blkno)
		smgrextend(smgr, forknum, blkno, zero_block.data, true);
	else if (zero_it)
		smgrwrite(smgr, forknum, blkno, zero_block.data, true);
}

/*
 * Put a valid page with a maximal LSN for the block into shared buffers,
 * without dirtying it.  Redo then sees BLK_DONE and skips the block; a
 * zeroing read (RBM_ZERO_AND_LOCK) finds the buffer and does not zero it.
 */
static Buffer
pgwr_preload_done_page(PgwrLocator rnode, ForkNumber forknum, BlockNumber blkno)
{
	Buffer		buf;
	Page		page;

	buf = ReadBufferWithoutRelcache(rnode, forknum, blkno, RBM_ZERO_AND_LOCK, NULL, true);
	page = BufferGetPage(buf);
	PageInit(page, BLCKSZ, 0);
	PageSetLSN(page, PGWR_DONE_LSN);
	UnlockReleaseBuffer(buf);
	return buf;
}

/*
 * Throw away every buffer but the target's (after records that may have
 * taken PGWR_SIDE_BUDGET buffers, and at 'G').  Besides the scratch
 * database, the target's relation gets buffers of its other forks (FSM
 * updates, visibility-map pins) and, for a visibility-map target, the heap
 * pages routed to it.  Redo re-initializes and dirties pages of
 * WILL_INIT records whatever their LSN (heap_xlog_insert with
 * XLOG_HEAP_INIT_PAGE, ...), so they must not pile up until 'G': enough of
 * them would make the buffer manager write one.
 */
static void
pgwr_drop_side_buffers(void)
{
	SMgrRelation smgr = smgropen(target_rnode, PGWR_INVALID_BACKEND);
	ForkNumber	forks[MAX_FORKNUM + 1];
	BlockNumber firsts[MAX_FORKNUM + 1];
	int			nforks = 0;

	for (int f = 0; f <= MAX_FORKNUM; f++)
	{
		if (f == target_fork)
			continue;
		forks[nforks] = (ForkNumber) f;
		firsts[nforks] = 0;
		nforks++;
	}
	PgwrDropRelationBuffers(smgr, forks, nforks, firsts);
	DropDatabaseBuffers(PGWR_SCRATCH_DB);
	side_buffers = 0;
}

static void
pgwr_drop_all_buffers(void)
{
	DropDatabaseBuffers(PGWR_TARGET_DB);
	DropDatabaseBuffers(PGWR_SCRATCH_DB);
	side_buffers = 0;
}

/* Remove what earlier runs left in the private databases. */
static void
pgwr_wipe_private_dirs(void)
{
	Oid			dbs[2] = {PGWR_TARGET_DB, PGWR_SCRATCH_DB};

	for (int i = 0; i < 2; i++)
	{
		char	   *path = GetDatabasePath(dbs[i], DEFAULTTABLESPACE_OID);
		struct stat st;

		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		{
			if (!rmtree(path, true))
				ereport(ERROR,
						(errmsg("could not remove directory \"%s\"", path)));
		}
		pfree(path);
	}
}

/* ---------------------------------------------------------------------
 * Message handlers
 * ---------------------------------------------------------------------
 */

static void
pgwr_handle_begin(const char *payload, Size len)
{
	PgwrTag		tag = pgwr_parse_tag(payload, len);

	/* a request that never got its 'G': forget it ('G' dropped everything) */
	if (in_request)
		pgwr_drop_all_buffers();

	target = tag;
	target_rnode = pgwr_private_rnode(PGWR_TARGET_DB, &tag.rnode);

	/*
	 * An init-fork target is redone in the main fork of its private copy.
	 * Redo treats init-fork blocks like any other but for FlushOneBuffer
	 * (XLogReadBufferForRedoExtended, hash_xlog_init_meta_page and
	 * hash_xlog_init_bitmap_page), which keeps the file in step for
	 * ResetUnloggedRelations and would write a buffer whose LSN is past our
	 * WAL; the page it leaves is the same.
	 */
	target_fork = (tag.forknum == INIT_FORKNUM) ? MAIN_FORKNUM : tag.forknum;
	target_ready = false;
	request_records = 0;
	in_request = true;
	pgwr_ensure_block(target_rnode, target_fork, target.blkno, true);
}

static void
pgwr_handle_push_page(const char *payload, Size len)
{
	PgwrTag		tag;
	Buffer		buf;

	if (len <= BLCKSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'P' message of %zu bytes has no room for a tag and a page", len)));
	tag = pgwr_parse_tag(payload, len - BLCKSZ);
	pgwr_require_target(&tag, 'P');
	if (request_records > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'P' after %llu records of the request",
						(unsigned long long) request_records)));

	buf = ReadBufferWithoutRelcache(target_rnode, target_fork, target.blkno,
									RBM_ZERO_AND_LOCK, NULL, true);
	memcpy(BufferGetPage(buf), payload + (len - BLCKSZ), BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
	target_ready = true;
}

/* Is the block reference the target itself? */
static bool
pgwr_is_target(const DecodedBkpBlock *blk)
{
	return PgwrLocatorEquals(blk->PGWR_BLK_LOCATOR, target.rnode) &&
		blk->forknum == target.forknum && blk->blkno == target.blkno;
}

/*
 * An XLOG_FPI or XLOG_FPI_FOR_HINT record that names the target: keep only
 * the target's block reference, as block 0.  xlog_redo restores each block of
 * these records on its own, so the target's page is the same; the other
 * images are not restored into scratch buffers only to be dropped.  An
 * XLOG_FPI with a block lacking its image is left whole, so that xlog_redo
 * still fails on it.
 */
static void
pgwr_narrow_fpi(DecodedXLogRecord *decoded)
{
	uint8		info = decoded->header.xl_info & ~XLR_INFO_MASK;
	int			target_id = -1;

	if (decoded->header.xl_rmid != RM_XLOG_ID ||
		(info != XLOG_FPI && info != XLOG_FPI_FOR_HINT) || decoded->max_block_id <= 0)
		return;
	for (int id = 0; id <= decoded->max_block_id; id++)
	{
		DecodedBkpBlock *blk = &decoded->blocks[id];

		if (!blk->in_use)
			continue;
		if (info == XLOG_FPI && !blk->has_image)
			return;
		if (pgwr_is_target(blk))
		{
			if (target_id >= 0)
				return;			/* named twice: pgwr_route_blocks says so */
			target_id = id;
		}
	}
	if (target_id < 0)
		return;
	if (target_id > 0)
		decoded->blocks[0] = decoded->blocks[target_id];
	decoded->max_block_id = 0;
}

/*
 * Rewrite the block references of a decoded record so that redo reaches
 * only the target (see the file header).  Returns the block id of the
 * target, -1 if the record does not name it, -2 if it reaches the VM
 * target through a heap block.
 */
static int
pgwr_route_blocks(DecodedXLogRecord *decoded)
{
	bool		vm_target = (target.forknum == VISIBILITYMAP_FORKNUM);
	RmgrId		rmid = decoded->header.xl_rmid;
	bool		heap_record = (rmid == RM_HEAP_ID || rmid == RM_HEAP2_ID);
	int			target_id = -1;

	pgwr_narrow_fpi(decoded);
	for (int id = 0; id <= decoded->max_block_id; id++)
	{
		DecodedBkpBlock *blk = &decoded->blocks[id];

		if (!blk->in_use)
			continue;

		if (pgwr_is_target(blk))
		{
			if (target_id >= 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("record names the target block twice (block ids %d and %d)",
								target_id, id)));
			blk->PGWR_BLK_LOCATOR = target_rnode;
			blk->forknum = target_fork;
			target_id = id;
			continue;
		}

		if (vm_target && heap_record && blk->forknum == MAIN_FORKNUM &&
			PgwrLocatorEquals(blk->PGWR_BLK_LOCATOR, target.rnode))
		{
			/*
			 * A heap page of the VM target's relation: give it the private
			 * relation, so visibilitymap_pin/clear reach the target VM
			 * page, and a maximal-LSN page so the heap page itself is
			 * skipped.  Its image, if any, is not restored.
			 */
			blk->PGWR_BLK_LOCATOR = target_rnode;
			blk->apply_image = false;
			pgwr_ensure_block(blk->PGWR_BLK_LOCATOR, MAIN_FORKNUM, blk->blkno, false);
			blk->prefetch_buffer = pgwr_preload_done_page(blk->PGWR_BLK_LOCATOR, MAIN_FORKNUM, blk->blkno);
			if (target_id == -1 &&
				PGWR_HEAPBLK_TO_MAPBLOCK(blk->blkno) == target.blkno)
				target_id = -2;
			continue;
		}

		/* Any other block: the scratch database, where redo skips it. */
		blk->PGWR_BLK_LOCATOR = pgwr_private_rnode(PGWR_SCRATCH_DB, &blk->PGWR_BLK_LOCATOR);
		if (blk->forknum == INIT_FORKNUM)
			blk->forknum = MAIN_FORKNUM;	/* no FlushOneBuffer for us */
		pgwr_ensure_block(blk->PGWR_BLK_LOCATOR, blk->forknum, blk->blkno, false);
		if (!blk->apply_image)
			blk->prefetch_buffer = pgwr_preload_done_page(blk->PGWR_BLK_LOCATOR, blk->forknum, blk->blkno);
	}
	return target_id;
}

static void
pgwr_handle_apply(const char *payload, Size len)
{
	XLogRecPtr	end_lsn;
	Size		reclen;
	XLogRecord *record;
	DecodedXLogRecord *decoded;
	char	   *errormsg = NULL;
	pg_crc32c	crc;
	int			target_id;
	MemoryContext oldcxt;

	if (!in_request)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'A' message outside a request (no 'B' before it)")));
	if (len < sizeof(uint64) + SizeOfXLogRecord)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'A' message of %zu bytes is too short for an LSN and a record header",
						len)));

	end_lsn = pgwr_get_u64(payload);
	reclen = len - sizeof(uint64);
	cur_end_lsn = end_lsn;

	oldcxt = MemoryContextSwitchTo(record_cxt);

	/* aligned private copy: the decoder reads the header in place */
	record = (XLogRecord *) palloc_extended(reclen, MCXT_ALLOC_HUGE);
	memcpy(record, payload + sizeof(uint64), reclen);

	if (record->xl_tot_len != reclen)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("record length %u in the header does not match the %zu bytes sent",
						record->xl_tot_len, reclen)));
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, ((char *) record) + SizeOfXLogRecord, reclen - SizeOfXLogRecord);
	COMP_CRC32C(crc, (char *) record, offsetof(XLogRecord, xl_crc));
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(record->xl_crc, crc))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("incorrect resource manager data checksum in record ending at %X/%X",
						LSN_FORMAT_ARGS(end_lsn))));
	if (!RmgrIdIsValid(record->xl_rmid) || !RmgrIdExists(record->xl_rmid))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid resource manager ID %u in record ending at %X/%X",
						record->xl_rmid, LSN_FORMAT_ARGS(end_lsn))));

	cur_rmid = record->xl_rmid;
	cur_info = record->xl_info;
	cur_in_record = true;

	/*
	 * The protocol carries only the end LSN; the start is exact unless the
	 * record crosses a WAL page boundary.  Redo routines stamp EndRecPtr.
	 */
	reader->EndRecPtr = end_lsn;
	reader->ReadRecPtr = end_lsn >= MAXALIGN(reclen) ? end_lsn - MAXALIGN(reclen) : 0;
	reader->NextRecPtr = end_lsn;

	decoded = (DecodedXLogRecord *)
		palloc_extended(DecodeXLogRecordRequiredSpace(reclen), MCXT_ALLOC_HUGE);
	if (!DecodeXLogRecord(reader, decoded, record, reader->ReadRecPtr, &errormsg))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decode record ending at %X/%X: %s",
						LSN_FORMAT_ARGS(end_lsn), errormsg ? errormsg : "unknown error")));
	decoded->next_lsn = end_lsn;

	target_id = pgwr_route_blocks(decoded);
	if (target_id == -1)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("record does not reference the target block"),
				 errhint("Send only records whose block references name the target "
						 "(and, for a visibility-map target, heap records of its relation).")));

	if (!target_ready)
	{
		DecodedBkpBlock *tb = target_id >= 0 ? &decoded->blocks[target_id] : NULL;

		if (tb != NULL && (tb->apply_image || (tb->flags & BKPBLOCK_WILL_INIT)))
			target_ready = true;
		else if (tb != NULL && target_id == 0 && cur_rmid == RM_HEAP2_ID &&
				 (cur_info & XLOG_HEAP_OPMASK) == XLOG_HEAP2_VISIBLE)
			target_ready = true;	/* VM page read with RBM_ZERO_ON_ERROR */
		else
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("no base page for the target and the first record neither "
							"restores a full-page image of it nor initializes it"),
					 errhint("Send a base page ('P') for this block.")));
	}

	reader->record = decoded;
	GetRmgr(cur_rmid).rm_redo(reader);
	reader->record = NULL;

	cur_in_record = false;
	request_records++;

	/* what happened to other blocks goes before it could crowd shared buffers */
	side_buffers += decoded->max_block_id + 1 + PGWR_IMPLICIT_BUFFERS;
	if (side_buffers >= PGWR_SIDE_BUDGET)
		pgwr_drop_side_buffers();

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(record_cxt);
}

static void
pgwr_handle_get_page(const char *payload, Size len)
{
	PgwrTag		tag = pgwr_parse_tag(payload, len);
	PGAlignedBlock page;
	Buffer		buf;

	pgwr_require_target(&tag, 'G');
	if (!target_ready)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'G' for a target that got neither a base page nor a record")));

	buf = ReadBufferWithoutRelcache(target_rnode, target_fork, target.blkno,
									RBM_NORMAL, NULL, true);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(page.data, BufferGetPage(buf), BLCKSZ);
	UnlockReleaseBuffer(buf);

	/* never written: the next request starts from nothing */
	pgwr_drop_all_buffers();
	in_request = false;
	target_ready = false;

	pgwr_write_all(page.data, BLCKSZ);
}

static void
pgwr_handle_ping(const char *payload, Size len)
{
	if (len != BLCKSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("'H' message carries %zu bytes, not %d", len, BLCKSZ)));
	pgwr_write_all(payload, BLCKSZ);
}

static void
pgwr_dispatch(char type, const char *payload, Size len)
{
	if (pgwr_trace)
		ereport(LOG, (errmsg_internal("pg_walredo: '%c' message, %zu bytes", type, len)));
	switch (type)
	{
		case 'B':
			pgwr_handle_begin(payload, len);
			break;
		case 'P':
			pgwr_handle_push_page(payload, len);
			break;
		case 'A':
			pgwr_handle_apply(payload, len);
			break;
		case 'G':
			pgwr_handle_get_page(payload, len);
			break;
		case 'H':
			pgwr_handle_ping(payload, len);
			break;
		default:
			/* unreachable: checked when the header arrived */
			elog(ERROR, "unknown message type 0x%02X", (unsigned char) type);
	}
}

/* ---------------------------------------------------------------------
 * Main loop
 * ---------------------------------------------------------------------
 */

static void
pgwr_setup(void)
{
	int			flags;

	if (XLogHintBitIsNeeded())
		ereport(FATAL,
				(errmsg("pg_walredo needs a scratch cluster with data checksums and "
						"wal_log_hints off"),
				 errdetail("With either on, redo would WAL-log hint-bit changes into the "
						   "scratch cluster.")));

	/* Leave the transaction InitPostgres is running us in. */
	if (IsTransactionState())
		CommitTransactionCommand();
	MemoryContextSwitchTo(TopMemoryContext);
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "pg_walredo");

	/* Replies go to a private copy of stdout; stray output goes to stderr. */
	fflush(stdout);
	reply_fd = dup(STDOUT_FILENO);
	if (reply_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not redirect stdout: %m")));
	(void) fcntl(reply_fd, F_SETFD, FD_CLOEXEC);

	/* Non-blocking stdin, waited on with the latch: signals get through. */
	flags = fcntl(STDIN_FILENO, F_GETFL);
	if (flags < 0 || fcntl(STDIN_FILENO, F_SETFL, flags | O_NONBLOCK) < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not make stdin non-blocking: %m")));
#if PG_VERSION_NUM >= 170000
	stdin_wes = CreateWaitEventSet(NULL, 2);	/* not tied to a resource owner */
#else
	stdin_wes = CreateWaitEventSet(TopMemoryContext, 2);
#endif
	AddWaitEventToSet(stdin_wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(stdin_wes, WL_SOCKET_READABLE, STDIN_FILENO, NULL, NULL);

	before_shmem_exit(pgwr_exit_callback, (Datum) 0);

	/*
	 * Behave like the startup process replaying WAL: XLogReadBufferExtended
	 * and smgr act in recovery mode; with reachedConsistency false a missing
	 * page is remembered instead of being fatal.  The btree, gin, gist and
	 * spgist redo routines need their private memory contexts.
	 */
	InRecovery = true;
	reachedConsistency = false;
	RmgrStartup();

	reader = XLogReaderAllocate(wal_segment_size, NULL, XL_ROUTINE(.page_read = NULL), NULL);
	if (reader == NULL)
		ereport(FATAL, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	record_cxt = AllocSetContextCreate(TopMemoryContext, "pg_walredo record",
									   ALLOCSET_DEFAULT_SIZES);
	inbuf_size = PGWR_INBUF_INIT;
	inbuf = MemoryContextAllocHuge(TopMemoryContext, inbuf_size);
	memset(zero_block.data, 0, BLCKSZ);

	pgwr_wipe_private_dirs();
}

static void
pgwr_serve_forever(void)
{
	sigjmp_buf	local_sigjmp_buf;
	ErrorContextCallback errcallback;

	pgwr_setup();

	/*
	 * Any ERROR ends the process: report it on stderr and leave without
	 * running anything that could write a buffer.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		HOLD_INTERRUPTS();
		EmitErrorReport();
		_exit(1);
	}
	PG_exception_stack = &local_sigjmp_buf;

	errcallback.callback = pgwr_error_callback;
	errcallback.arg = NULL;
	errcallback.previous = NULL;
	error_context_stack = &errcallback;

	ereport(DEBUG1, (errmsg_internal("pg_walredo: serving the wal-redo protocol")));

	for (;;)
	{
		Size		avail = inbuf_end - inbuf_start;

		if (avail >= PGWR_HDR)
		{
			const char *msg = inbuf + inbuf_start;
			char		type = msg[0];
			uint32		mlen = pgwr_get_u32(msg + 1);

			cur_msg_type = type;
			if (type != 'B' && type != 'P' && type != 'A' && type != 'G' && type != 'H')
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("unknown message type 0x%02X", (unsigned char) type)));
			if (mlen < 4 || mlen > PGWR_MAX_MSG)
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("invalid message length %u", mlen)));
			if (avail >= (Size) mlen + 1)
			{
				pgwr_dispatch(type, msg + PGWR_HDR, mlen - 4);
				inbuf_start += (Size) mlen + 1;
				cur_msg_type = 0;
				CHECK_FOR_INTERRUPTS();
				continue;
			}
			if (!pgwr_fill_inbuf((Size) mlen + 1 - avail))
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("end of input inside a '%c' message (%zu of %u bytes)",
								type, avail, mlen + 1)));
			continue;
		}
		if (!pgwr_fill_inbuf(PGWR_HDR))
		{
			if (avail > 0)
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("end of input inside a message header")));
			/* clean EOF: the exit callback drops our buffers */
			error_context_stack = NULL;
			proc_exit(0);
		}
	}
}
