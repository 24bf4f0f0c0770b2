/*
 * A PKCS#11 module in front of a real one (SoftHSM2), standing for a
 * network HSM in benchmarks and tests: it forwards every call to the module
 * named by SLOW_PKCS11_MODULE, and the crypto calls (C_*Init, C_Encrypt,
 * C_Decrypt, C_Sign, C_Verify, C_Digest) first do what its settings say:
 *
 *   delay_us N   wait N microseconds, as a round trip on a wire would,
 *                without using a CPU (default SLOW_PKCS11_DELAY_US, or 500)
 *   hang 1       wait until the setting is 0 again (a call stuck on the wire)
 *   fail CODE    return CODE (a CK_RV, decimal or 0x hex) without calling on
 *
 * Settings are read, one per line, from the file named by
 * SLOW_PKCS11_CONTROL before every crypto call, so a test or benchmark
 * changes them at run time by rewriting the file; without the file, only
 * the environment's delay applies. Built by tasks/bench/hsm_slow_module.ts.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST wrapped;
static long default_delay_us = 500;
static const char *control_path;

struct settings {
  long delay_us;
  int hang;
  CK_RV fail;
};

static struct settings read_settings(void) {
  struct settings s = {default_delay_us, 0, CKR_OK};
  FILE *f = control_path ? fopen(control_path, "r") : NULL;
  if (f == NULL) return s;
  char line[128];
  while (fgets(line, sizeof line, f)) {
    char key[32];
    char value[64];
    if (sscanf(line, "%31s %63s", key, value) != 2) continue;
    if (strcmp(key, "delay_us") == 0) s.delay_us = atol(value);
    else if (strcmp(key, "hang") == 0) s.hang = atoi(value);
    else if (strcmp(key, "fail") == 0) s.fail = strtoul(value, NULL, 0);
  }
  fclose(f);
  return s;
}

static void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

/* What every crypto call does before it is forwarded: a CK_RV to return instead, or CKR_OK. */
static CK_RV wire(void) {
  struct settings s = read_settings();
  while (s.hang) {
    sleep_us(2000);
    s = read_settings();
  }
  if (s.delay_us > 0) sleep_us(s.delay_us);
  return s.fail;
}

#define WIRE_INIT(name)                                                                  \
  static CK_RV slow_##name(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { \
    CK_RV rv = wire();                                                                   \
    return rv != CKR_OK ? rv : real->C_##name(s, m, k);                                  \
  }
#define WIRE_CALL(name)                                                                    \
  static CK_RV slow_##name(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, \
                           CK_ULONG_PTR len) {                                             \
    CK_RV rv = wire();                                                                     \
    return rv != CKR_OK ? rv : real->C_##name(s, in, n, out, len);                         \
  }

WIRE_INIT(EncryptInit)
WIRE_INIT(DecryptInit)
WIRE_INIT(SignInit)
WIRE_INIT(VerifyInit)
WIRE_CALL(Encrypt)
WIRE_CALL(Decrypt)
WIRE_CALL(Sign)

static CK_RV slow_Verify(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR sig,
                         CK_ULONG sig_len) {
  CK_RV rv = wire();
  return rv != CKR_OK ? rv : real->C_Verify(s, in, n, sig, sig_len);
}
static CK_RV slow_DigestInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m) {
  CK_RV rv = wire();
  return rv != CKR_OK ? rv : real->C_DigestInit(s, m);
}
WIRE_CALL(Digest)

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (real == NULL) {
    const char *path = getenv("SLOW_PKCS11_MODULE");
    const char *us = getenv("SLOW_PKCS11_DELAY_US");
    void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CK_C_GetFunctionList get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
    if (get == NULL) return CKR_GENERAL_ERROR;
    CK_FUNCTION_LIST_PTR inner;
    CK_RV rv = get(&inner);
    if (rv != CKR_OK) return rv;
    if (us) default_delay_us = atol(us);
    control_path = getenv("SLOW_PKCS11_CONTROL");
    wrapped = *inner;
    wrapped.C_EncryptInit = slow_EncryptInit;
    wrapped.C_Encrypt = slow_Encrypt;
    wrapped.C_DecryptInit = slow_DecryptInit;
    wrapped.C_Decrypt = slow_Decrypt;
    wrapped.C_SignInit = slow_SignInit;
    wrapped.C_Sign = slow_Sign;
    wrapped.C_VerifyInit = slow_VerifyInit;
    wrapped.C_Verify = slow_Verify;
    wrapped.C_DigestInit = slow_DigestInit;
    wrapped.C_Digest = slow_Digest;
    real = inner;
  }
  *list = &wrapped;
  return CKR_OK;
}
