/*
 * test.h - the tests' few macros.  Each test is a standalone program:
 * exit 0 pass, 1 fail, 77 skip (tests/run.sh counts them).
 */
#ifndef USWAP_TEST_H
#define USWAP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_FAIL(...)                                                        \
	do {                                                               \
		fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);      \
		fprintf(stderr, __VA_ARGS__);                              \
		fputc('\n', stderr);                                       \
		exit(1);                                                   \
	} while (0)

#define T_ASSERT(c)                                                        \
	do {                                                               \
		if (!(c))                                                  \
			T_FAIL("%s", #c);                                  \
	} while (0)

#define T_EQ(a, b)                                                         \
	do {                                                               \
		long long _a = (long long)(a), _b = (long long)(b);        \
		if (_a != _b)                                              \
			T_FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b);  \
	} while (0)

#define T_SKIP(...)                                                        \
	do {                                                               \
		fprintf(stderr, "SKIP: ");                                 \
		fprintf(stderr, __VA_ARGS__);                              \
		fputc('\n', stderr);                                       \
		exit(77);                                                  \
	} while (0)

/* Run one named sub-test, printing its name (a program may hold several). */
#define T_RUN(fn)                                                          \
	do {                                                               \
		fprintf(stderr, "  - %s\n", #fn);                          \
		fn();                                                      \
	} while (0)

#endif
