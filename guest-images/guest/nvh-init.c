/*
 * PID 1 of the test guest. systemd-to-SSH took ~78 s under TCG on the project's
 * machines; the guest needs only: run the setup script once, keep sshd alive, reap
 * orphans (an init that does not wait() collects zombies from every test).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		execv(argv[0], argv);
		fprintf(stderr, "nvh-init: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static void run_setup(void)
{
	char *setup[] = { "/etc/nvh/setup", NULL };
	pid_t pid = spawn(setup);
	int status;

	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

int main(void)
{
	char *sshd[] = { "/usr/sbin/sshd", "-D", "-e", NULL };
	sigset_t block;
	pid_t sshd_pid;

	if (getpid() != 1) {
		fprintf(stderr, "nvh-init: must run as PID 1\n");
		return 1;
	}
	/* SIGTERM/SIGINT from the harness (or ctrl-alt-del) mean: power off now. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	reboot(RB_DISABLE_CAD);

	run_setup();
	sshd_pid = spawn(sshd);
	for (;;) {
		struct timespec poll = { .tv_sec = 1 };
		siginfo_t si;
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != sshd_pid)
				continue;
			/* A test may kill sshd on purpose; bring it back so the harness can. */
			fprintf(stderr, "nvh-init: sshd exited (status %d), restarting\n", status);
			sleep(1);
			sshd_pid = spawn(sshd);
		}
		if (sigtimedwait(&block, &si, &poll) > 0) {
			sync();
			reboot(RB_POWER_OFF);
		}
	}
}
