/*
 * resolve-musl: resolve a name the way a musl-linked application does.
 *
 * It calls getaddrinfo(), so the answer goes through musl's own stub
 * resolver: /etc/hosts, then /etc/resolv.conf with its search list and
 * ndots, which musl treats differently from glibc (musl stops walking the
 * search list at the first name that exists without the requested family).
 * Each lookup prints one JSON line; the schema is shared with resolve-go and
 * described in images/README.md.
 *
 * Usage: resolve-musl [-family 4|6|any] [-count N] NAME
 * Exit: 0 every lookup resolved, 2 a lookup got EAI_NONAME (NXDOMAIN),
 *       1 any other failure (EAI_NODATA, EAI_AGAIN, ...), 64 bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define EXIT_NXDOMAIN 2
#define EXIT_USAGE 64
#define MAX_ADDRESSES 64

static void print_json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static const char *status_of(int rc)
{
	if (rc == 0)
		return "ok";
	if (rc == EAI_NONAME)
		return "nxdomain";
#ifdef EAI_NODATA
	if (rc == EAI_NODATA)
		return "nodata";
#endif
	return "error";
}

static const char *eai_name(int rc)
{
	switch (rc) {
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
	case EAI_FAMILY: return "EAI_FAMILY";
	case EAI_MEMORY: return "EAI_MEMORY";
	case EAI_SYSTEM: return "EAI_SYSTEM";
#ifdef EAI_NODATA
	case EAI_NODATA: return "EAI_NODATA";
#endif
	default: return "EAI_OTHER";
	}
}

/* One lookup, one JSON line; returns the getaddrinfo() code. */
static int lookup(const char *name, int family, const char *family_flag, int seq)
{
	struct addrinfo hints, *res = NULL, *ai;
	char addrs[MAX_ADDRESSES][INET6_ADDRSTRLEN];
	char message[256];
	int naddrs = 0, rc, i, j;
	double started, elapsed;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	/* One socket type, so each address comes back once rather than per protocol. */
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_CANONNAME;

	started = now_ms();
	rc = getaddrinfo(name, NULL, &hints, &res);
	elapsed = now_ms() - started;

	for (ai = rc == 0 ? res : NULL; ai != NULL && naddrs < MAX_ADDRESSES; ai = ai->ai_next) {
		const void *raw;
		char text[INET6_ADDRSTRLEN];
		int seen = 0;

		if (ai->ai_family == AF_INET)
			raw = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			raw = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(ai->ai_family, raw, text, sizeof(text)) == NULL)
			continue;
		for (j = 0; j < naddrs; j++)
			seen |= strcmp(addrs[j], text) == 0;
		if (!seen)
			strcpy(addrs[naddrs++], text);
	}

	printf("{\"resolver\":\"musl\",\"seq\":%d,\"name\":", seq);
	print_json_string(name);
	printf(",\"family\":\"%s\",\"type\":\"ADDR\",\"status\":\"%s\",\"addresses\":[",
	       family_flag, status_of(rc));
	for (i = 0; i < naddrs; i++) {
		if (i)
			putchar(',');
		print_json_string(addrs[i]);
	}
	fputs("],\"records\":[],\"canonical\":", stdout);
	print_json_string(rc == 0 && res != NULL ? res->ai_canonname : NULL);
	fputs(",\"error\":", stdout);
	if (rc == 0) {
		fputs("null", stdout);
	} else {
		snprintf(message, sizeof(message), "%s: %s", eai_name(rc), gai_strerror(rc));
		print_json_string(message);
	}
	printf(",\"elapsed_ms\":%.3f}\n", elapsed);
	fflush(stdout);

	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

static int usage(const char *why)
{
	fprintf(stderr, "resolve-musl: %s\nusage: resolve-musl [-family 4|6|any] [-count N] NAME\n", why);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *family_flag = "any", *name = NULL;
	int family = AF_UNSPEC, count = 1, i, worst = 0;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		/* Accept the Go flag spellings (-flag and --flag) so both probes take one command line. */
		if (arg[0] == '-' && arg[1] == '-')
			arg++;
		if (strcmp(arg, "-family") == 0 && i + 1 < argc) {
			family_flag = argv[++i];
			if (strcmp(family_flag, "4") == 0)
				family = AF_INET;
			else if (strcmp(family_flag, "6") == 0)
				family = AF_INET6;
			else if (strcmp(family_flag, "any") == 0)
				family = AF_UNSPEC;
			else
				return usage("-family takes 4, 6 or any");
		} else if (strcmp(arg, "-count") == 0 && i + 1 < argc) {
			char *end;

			count = (int)strtol(argv[++i], &end, 10);
			if (*end != '\0' || count < 1 || count > 100000)
				return usage("-count takes a number from 1 to 100000");
		} else if (arg[0] == '-') {
			return usage("unknown flag");
		} else if (name == NULL) {
			name = argv[i];
		} else {
			return usage("exactly one NAME");
		}
	}
	if (name == NULL)
		return usage("missing NAME");

	for (i = 1; i <= count; i++) {
		int rc = lookup(name, family, family_flag, i);
		int code = rc == 0 ? 0 : rc == EAI_NONAME ? EXIT_NXDOMAIN : EXIT_FAILURE;

		/* The exit code tells the worst outcome: any failure over NXDOMAIN over success. */
		if (code == EXIT_FAILURE || (code == EXIT_NXDOMAIN && worst == 0))
			worst = code;
	}
	return worst;
}
