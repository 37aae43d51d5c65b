/* bench.c: timing driver and workload helpers for bench/run.
 *
 * One binary, two roles chosen by argv[1]:
 *   driver roles (run by bench/run, outside the init):
 *     startup  N MODE -- INIT... CMD...      N x (clone [+CLONE_NEWPID], exec, wait); prints ns per run
 *     signal   N MODE FIFO -- ARGV...        kill(init, SIGUSR1) -> child's handler; prints ns per sample,
 *                                            then the init's and its child's CPU time and run-queue
 *                                            wait over all samples (init_cpu_ns=..., schedstat)
 *     reap     MODE DONE GO -- ARGV...       orphan storm; prints key=value
 *     teardown MODE SIG FIFO GRACE_MS -- ARGV...  SIG to the init of a process tree; survivors are
 *                                            those still alive GRACE_MS after the init exited
 *     hold     MODE -- ARGV...               start, print pid, wait for EOF on stdin, kill all
 *     zombies  N                             the kernel's floor of `undead zombie N` and its release,
 *                                            run as PID 1 of a fresh namespace: N children that exit
 *                                            at once (clone CLONE_VM, an 8 KiB stack each, as undead
 *                                            makes them), each confirmed a zombie (waitid WNOWAIT),
 *                                            then each reaped by pid; prints key=value ms
 *   helper roles (the workload, run under the init):
 *     h-orphans N DONE GO [floor]            fork N orphans as fast as possible
 *     h-sigwait FIFO                         write clock_gettime from a SIGUSR1 handler
 *     h-tree N FIFO                          a tree of N processes (main child + N-1 descendants)
 *     h-pause [FIFO]                         sleep forever
 * MODE is "pid1" (the init is PID 1 of a fresh PID namespace) or "sub" (same namespace, the driver
 * is a child subreaper so nothing escapes to the host's init); a "-pin" suffix pins everything to CPU 0.
 * pid1 also gives the init a private mount namespace with a fresh /proc (as in a container); a
 * "-host" suffix (after "-pin" if both) keeps the host's mount namespace and /proc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(3);
}

static void sleep_ns(long ns)
{
	struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* With a fresh PID namespace, also a private mount namespace with its own /proc, as a container
 * has (an init that reads /proc must see its own namespace). Set by the "-host" mode suffix off. */
static int fresh_proc = 1;

/* fork(), or fork into a new PID namespace; the child execs argv. */
static pid_t spawn(int newpid, char **argv)
{
	int flags = newpid ? CLONE_NEWPID | (fresh_proc ? CLONE_NEWNS : 0) : 0;
	pid_t p = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (p < 0)
		die("clone");
	if (p == 0) {
		if (newpid && fresh_proc &&
		    (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		     mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)) {
			perror("bench: mount /proc");
			_exit(126);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return p;
}

static int read_full_timeout(int fd, void *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t k = read(fd, (char *)buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static int open_fifo(const char *path)
{
	unlink(path);
	if (mkfifo(path, 0600) < 0)
		die("mkfifo");
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open fifo");
	return fd;
}

/* Children of every thread of pid, appended to out. */
static int children_of(pid_t pid, pid_t *out, int cap, int n)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return n;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char cp[300];
		snprintf(cp, sizeof cp, "/proc/%d/task/%s/children", pid, e->d_name);
		FILE *f = fopen(cp, "re");
		if (!f)
			continue;
		int c;
		while (fscanf(f, "%d", &c) == 1)
			if (n < cap)
				out[n++] = c;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* All descendants of pid (breadth first). */
static int descendants(pid_t pid, pid_t *out, int cap)
{
	int n = children_of(pid, out, cap, 0);
	for (int i = 0; i < n; i++)
		n = children_of(out[i], out, cap, n);
	return n;
}

/* comm of pid into buf (empty on error) */
static void proc_comm(pid_t pid, char *buf, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/comm", pid);
	buf[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t k = read(fd, buf, n - 1);
	close(fd);
	if (k < 0)
		k = 0;
	buf[k] = 0;
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = 0;
}

/* Is pid the workload (this very binary: the helper or one of its forks), not a process of the
 * init's own (e.g. a guard)? The helper is this executable, so it has our comm. */
static int is_workload(pid_t pid)
{
	static char self[32];
	char c[32];
	if (!self[0])
		proc_comm(getpid(), self, sizeof self);
	proc_comm(pid, c, sizeof c);
	return c[0] == 0 || !strcmp(c, self);
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t k = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (k <= 0)
		return 0;
	buf[k] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] ? p[2] : 0;
}

/* SIGKILL every descendant of the driver and reap them (the driver is a subreaper). */
static void kill_all_and_reap(void)
{
	static pid_t pids[70000];
	for (int round = 0; round < 50; round++) {
		int n = descendants(getpid(), pids, 70000);
		if (n == 0)
			break;
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		while (waitpid(-1, NULL, __WALL | WNOHANG) > 0)
			;
		sleep_ns(2000000);
	}
	while (waitpid(-1, NULL, __WALL | WNOHANG) > 0)
		;
}

/* "pid1" or "sub", with "-pin": the driver (and so everything it starts) runs on CPU 0 only */
static int parse_mode(const char *m)
{
	size_t l = strlen(m);
	static char base[16];
	if (l > 5 && !strcmp(m + l - 5, "-host")) {
		fresh_proc = 0;
		snprintf(base, sizeof base, "%.*s", (int)(l - 5), m);
		m = base;
		l -= 5;
	}
	if (l > 4 && !strcmp(m + l - 4, "-pin")) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(0, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0)
			die("sched_setaffinity");
		static char base2[16];
		snprintf(base2, sizeof base2, "%.*s", (int)(l - 4), m);
		m = base2;
	}
	if (!strcmp(m, "pid1"))
		return 1;
	if (!strcmp(m, "sub"))
		return 0;
	fprintf(stderr, "bench: bad mode %s\n", m);
	exit(2);
}

static char **after_dashes(int argc, char **argv, int from)
{
	for (int i = from; i < argc; i++)
		if (!strcmp(argv[i], "--"))
			return argv + i + 1;
	fprintf(stderr, "bench: missing --\n");
	exit(2);
}

/* ---------------- driver roles ---------------- */

static int drv_startup(int argc, char **argv)
{
	int n = atoi(argv[2]);
	int newpid = parse_mode(argv[3]);
	char **cmd = after_dashes(argc, argv, 4);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	int fails = 0;
	for (int i = 0; i < n; i++) {
		int st;
		uint64_t t0 = now_ns();
		pid_t p = spawn(newpid, cmd);
		if (waitpid(p, &st, 0) < 0)
			die("waitpid");
		uint64_t t1 = now_ns();
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fails++;
			printf("fail %d\n", st);
		} else
			printf("%llu\n", (unsigned long long)(t1 - t0));
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	fflush(stdout);
	kill_all_and_reap();
	return fails ? 1 : 0;
}

/* /proc/PID/schedstat: time on a CPU and time waiting on a run queue, ns; 0 if unreadable */
static int schedstat2(pid_t pid, unsigned long long out[2])
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
	FILE *f = fopen(path, "re");
	int ok = f && fscanf(f, "%llu %llu", &out[0], &out[1]) == 2;
	if (f)
		fclose(f);
	return ok;
}

static int drv_signal(int argc, char **argv)
{
	int n = atoi(argv[2]);
	int newpid = parse_mode(argv[3]);
	int fd = open_fifo(argv[4]);
	char **cmd = after_dashes(argc, argv, 5);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t init = spawn(newpid, cmd);
	uint64_t ts;
	if (read_full_timeout(fd, &ts, 8, 5000) < 0) {
		printf("error child not ready\n");
		kill_all_and_reap();
		return 1;
	}
	sleep_ns(20000000);
	/* the scheduler's account (schedstat) of the init and of its child, the helper (none in
	 * the floor config: the helper is the target): CPU and run-queue wait per signal */
	pid_t kid[2];
	int kids = children_of(init, kid, 2, 0);
	unsigned long long before[2][2], after[2][2];
	int init_ok = schedstat2(init, before[0]);
	int kid_ok = kids == 1 && schedstat2(kid[0], before[1]);
	int lost = 0;
	for (int i = 0; i < n; i++) {
		sleep_ns(500000);
		uint64_t t0 = now_ns();
		if (kill(init, SIGUSR1) < 0)
			die("kill");
		if (read_full_timeout(fd, &ts, 8, 1000) < 0) {
			lost++;
			if (lost > 3)
				break;
			continue;
		}
		printf("%llu\n", (unsigned long long)(ts - t0));
	}
	/* only what was read at both ends (an init that died has no account to report) */
	if (init_ok && schedstat2(init, after[0]))
		printf("init_cpu_ns=%llu\ninit_wait_ns=%llu\n", after[0][0] - before[0][0],
		       after[0][1] - before[0][1]);
	if (kid_ok && schedstat2(kid[0], after[1]))
		printf("child_cpu_ns=%llu\nchild_wait_ns=%llu\n", after[1][0] - before[1][0],
		       after[1][1] - before[1][1]);
	if (lost)
		printf("lost %d\n", lost);
	fflush(stdout);
	kill_all_and_reap();
	unlink(argv[4]);
	return lost ? 1 : 0;
}

static uint64_t sched_runtime_ns(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
	FILE *f = fopen(path, "re");
	unsigned long long v = 0;
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static long long utime_stime_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t k = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (k <= 0)
		return -1;
	buf[k] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, stt = 0;
	/* fields after comm: state(3) ... utime(14) stime(15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
		return -1;
	return (long long)(ut + stt);
}

static int drv_reap(int argc, char **argv)
{
	int newpid = parse_mode(argv[2]);
	int done = open_fifo(argv[3]);
	int go = open_fifo(argv[4]);
	char **cmd = after_dashes(argc, argv, 5);
	int floor = 0;
	for (char **a = cmd; *a; a++)
		if (!strcmp(*a, "floor"))
			floor = 1;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	uint64_t t0 = now_ns();
	pid_t init = spawn(newpid, cmd);
	char c;
	if (read_full_timeout(done, &c, 1, 120000) < 0) {
		printf("error helper did not finish\n");
		kill_all_and_reap();
		return 1;
	}
	uint64_t t_loop = now_ns();
	/* drain: wait until the init has no child left but the helper (floor: no child at all) */
	static pid_t kids[70000];
	int expect = floor ? 0 : 1, n = 0;
	long escaped = 0;
	uint64_t t_drained = 0;
	while (now_ns() - t_loop < 5000000000ull) {
		pid_t w;
		while ((w = waitpid(-1, NULL, __WALL | WNOHANG)) > 0)
			if (w != init)
				escaped++;
		n = children_of(init, kids, 70000, 0);
		int wl = 0;
		for (int i = 0; i < n; i++)
			wl += is_workload(kids[i]);
		if (wl <= expect) {
			t_drained = now_ns();
			break;
		}
		sleep_ns(500000);
	}
	/* the init's CPU, plus its own helper processes (children that are not the workload) */
	uint64_t cpu = sched_runtime_ns(init);
	long long ticks = utime_stime_ticks(init);
	int helpers = 0;
	n = children_of(init, kids, 70000, 0);
	for (int i = 0; i < n; i++)
		if (!is_workload(kids[i])) {
			cpu += sched_runtime_ns(kids[i]);
			ticks += utime_stime_ticks(kids[i]);
			helpers++;
		}
	int zombies = 0, alive = 0;
	if (!t_drained) {
		for (int i = 0; i < n; i++) {
			if (!is_workload(kids[i]))
				continue;
			char s = proc_state(kids[i]);
			if (s == 'Z')
				zombies++;
			else if (s)
				alive++;
		}
		/* the helper itself is one of the live ones */
		if (!floor && alive)
			alive--;
		t_drained = now_ns();
	}
	if (write(go, "G", 1) != 1)
		die("write go");
	int st = -1;
	uint64_t t_exit = 0;
	if (waitpid(init, &st, 0) == init)
		t_exit = now_ns();
	while (waitpid(-1, NULL, __WALL | WNOHANG) > 0)
		escaped++;
	printf("loop_ns=%llu\nwall_ns=%llu\nexit_ns=%llu\ninit_cpu_ns=%llu\ninit_ticks=%lld\n"
	       "zombies_left=%d\nalive_left=%d\nescaped=%ld\nstatus=%d\ninit_helpers=%d\n",
	       (unsigned long long)(t_loop - t0), (unsigned long long)(t_drained - t0),
	       (unsigned long long)(t_exit ? t_exit - t0 : 0), (unsigned long long)cpu, ticks,
	       zombies, alive, escaped, st, helpers);
	fflush(stdout);
	kill_all_and_reap();
	unlink(argv[3]);
	unlink(argv[4]);
	return 0;
}

static int drv_teardown(int argc, char **argv)
{
	int newpid = parse_mode(argv[2]);
	int sig = atoi(argv[3]);
	int fd = open_fifo(argv[4]);
	uint64_t grace = (uint64_t)atoll(argv[5]) * 1000000ull;
	char **cmd = after_dashes(argc, argv, 6);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t init = spawn(newpid, cmd);
	uint64_t ready;
	if (read_full_timeout(fd, &ready, 8, 10000) < 0) {
		printf("error tree not ready\n");
		kill_all_and_reap();
		return 1;
	}
	static pid_t pids[512];
	int n = descendants(getpid(), pids, 512);
	static struct pollfd pfd[512];
	for (int i = 0; i < n; i++) {
		pfd[i].fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
		pfd[i].events = POLLIN;
	}
	uint64_t t0 = now_ns(), t_last = 0, t_init = 0;
	if (kill(init, sig) < 0)
		die("kill");
	int left = 0;
	for (int i = 0; i < n; i++)
		if (pfd[i].fd >= 0)
			left++;
	/* survivors: still alive GRACE after the init exited (or 2 s after the signal) */
	uint64_t limit = 2000000000ull;
	while (left > 0) {
		uint64_t el = now_ns() - t0;
		if (t_init && t_init - t0 + grace < limit)
			limit = t_init - t0 + grace;
		if (el >= limit)
			break;
		int r = poll(pfd, (nfds_t)n, (int)((limit - el) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		uint64_t t = now_ns();
		for (int i = 0; i < n; i++)
			if (pfd[i].fd >= 0 && pfd[i].revents) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				left--;
				t_last = t;
				if (pids[i] == init)
					t_init = t;
			}
	}
	printf("procs=%d\nsurvivors=%d\nall_gone_ns=%llu\ninit_exit_ns=%llu\n", n, left,
	       (unsigned long long)(left ? 0 : t_last - t0),
	       (unsigned long long)(t_init ? t_init - t0 : 0));
	fflush(stdout);
	kill_all_and_reap();
	unlink(argv[4]);
	return 0;
}

static int drv_hold(int argc, char **argv)
{
	int newpid = parse_mode(argv[2]);
	char **cmd = after_dashes(argc, argv, 3);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t init = spawn(newpid, cmd);
	printf("%d\n", init);
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	kill(init, SIGKILL);
	kill_all_and_reap();
	return 0;
}

/* ---------------- helper roles ---------------- */

static int h_orphans(int argc, char **argv)
{
	int n = atoi(argv[2]);
	int floor = argc > 5 && !strcmp(argv[5], "floor");
	if (floor) {
		/* no init: the kernel reaps (SIGCHLD ignored), nothing in userspace does */
		signal(SIGCHLD, SIG_IGN);
		if (getpid() != 1)
			prctl(PR_SET_CHILD_SUBREAPER, 1);
	}
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		if (c < 0) {
			if (errno == EAGAIN) {
				sleep_ns(1000000);
				i--;
				continue;
			}
			die("fork");
		}
		if (c == 0) {
			pid_t me = getpid();
			pid_t g = fork();
			if (g == 0) {
				/* the orphan: dies (SIGKILL) as soon as its parent has exited */
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				if (getppid() != me)
					_exit(0);
				for (;;)
					pause();
			}
			_exit(0);
		}
		while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int d = open(argv[3], O_WRONLY | O_CLOEXEC);
	if (d < 0 || write(d, "D", 1) != 1)
		die("done fifo");
	int g = open(argv[4], O_RDONLY | O_CLOEXEC);
	char c;
	if (g < 0 || read(g, &c, 1) != 1)
		die("go fifo");
	return 0;
}

static int sig_fd = -1;

static void on_usr1(int s)
{
	(void)s;
	uint64_t t = now_ns();
	if (write(sig_fd, &t, 8) != 8)
		_exit(5);
}

static int h_sigwait(int argc, char **argv)
{
	(void)argc;
	sig_fd = open(argv[2], O_WRONLY | O_CLOEXEC);
	if (sig_fd < 0)
		die("open fifo");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	uint64_t zero = 0;
	if (write(sig_fd, &zero, 8) != 8)
		die("ready");
	for (;;)
		pause();
	return 0;
}

static void park(int fd)
{
	if (fd >= 0 && write(fd, "r", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

static int h_tree(int argc, char **argv)
{
	(void)argc;
	int n = atoi(argv[2]);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe");
	int direct = n / 2, orphans = n - 1 - direct;
	for (int i = 0; i < direct; i++) {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0) {
			close(p[0]);
			park(p[1]);
		}
	}
	pid_t mids[1024];
	for (int i = 0; i < orphans; i++) {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0) {
			close(p[0]);
			pid_t g = fork();
			if (g == 0)
				park(p[1]);
			_exit(g < 0 ? 1 : 0);
		}
		mids[i] = c;
	}
	close(p[1]);
	for (int i = 0; i < n - 1; i++) {
		char c;
		if (read(p[0], &c, 1) != 1)
			die("tree ready");
	}
	for (int i = 0; i < orphans; i++)
		while (waitpid(mids[i], NULL, 0) < 0 && errno == EINTR)
			;
	int fd = open(argv[3], O_WRONLY | O_CLOEXEC);
	uint64_t me = (uint64_t)getpid();
	if (fd < 0 || write(fd, &me, 8) != 8)
		die("ready fifo");
	for (;;)
		pause();
	return 0;
}

static double ms_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int zombie_child(void *arg)
{
	(void)arg;
	_exit(0);
}

static int drv_zombies(int argc, char **argv)
{
	(void)argc;
	long n = atol(argv[2]);
	const size_t stack = 8192;
	pid_t *pids = calloc(n > 0 ? n : 1, sizeof *pids);
	char *stacks = n > 0 ? mmap(NULL, n * stack, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
			     : MAP_FAILED;
	if (!pids || stacks == MAP_FAILED)
		return 2;
	double t0 = ms_now();
	long made = 0;
	for (; made < n; made++) {
		pid_t p = clone(zombie_child, stacks + (made + 1) * stack, CLONE_VM | SIGCHLD, NULL);
		if (p < 0)
			break;
		pids[made] = p;
	}
	siginfo_t si;
	for (long i = 0; i < made; i++)
		waitid(P_PID, pids[i], &si, WEXITED | WNOWAIT);
	double t1 = ms_now();
	for (long i = 0; i < made; i++)
		waitpid(pids[i], NULL, 0);
	double t2 = ms_now();
	printf("made=%ld create_ms=%.3f release_ms=%.3f\n", made, t1 - t0, t2 - t1);
	return made == n ? 0 : 1;
}

static int h_pause(int argc, char **argv)
{
	if (argc > 2) {
		int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
		uint64_t me = (uint64_t)getpid();
		if (fd >= 0 && write(fd, &me, 8) != 8)
			_exit(5);
	}
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: see the comment at the top of bench.c\n");
		return 2;
	}
	const char *r = argv[1];
	if (!strcmp(r, "startup") && argc > 4)
		return drv_startup(argc, argv);
	if (!strcmp(r, "signal") && argc > 5)
		return drv_signal(argc, argv);
	if (!strcmp(r, "reap") && argc > 5)
		return drv_reap(argc, argv);
	if (!strcmp(r, "teardown") && argc > 6)
		return drv_teardown(argc, argv);
	if (!strcmp(r, "hold") && argc > 3)
		return drv_hold(argc, argv);
	if (!strcmp(r, "zombies") && argc > 2)
		return drv_zombies(argc, argv);
	if (!strcmp(r, "h-orphans") && argc > 4)
		return h_orphans(argc, argv);
	if (!strcmp(r, "h-sigwait"))
		return h_sigwait(argc, argv);
	if (!strcmp(r, "h-tree") && argc > 3)
		return h_tree(argc, argv);
	if (!strcmp(r, "h-pause"))
		return h_pause(argc, argv);
	fprintf(stderr, "bench: unknown role %s\n", r);
	return 2;
}
