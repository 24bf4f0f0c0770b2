/*
 * A PKCS#11 module that stands for a network HSM in experiments
 * (tasks/bench/hsm_calls.ts --slow-us N): it forwards every call to the
 * module named by SLOW_PKCS11_MODULE (SoftHSM2), and the crypto calls
 * (C_EncryptInit, C_Encrypt, C_DecryptInit, C_Decrypt, C_SignInit, C_Sign)
 * first sleep SLOW_PKCS11_DELAY_US microseconds: a round trip on the wire,
 * during which the calling thread waits without using a CPU.
 */
#include <dlfcn.h>
#include <stdlib.h>
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
static struct timespec wire;

static void round_trip(void) { nanosleep(&wire, NULL); }

static CK_RV slow_EncryptInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) {
  round_trip();
  return real->C_EncryptInit(s, m, k);
}
static CK_RV slow_Encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR len) {
  round_trip();
  return real->C_Encrypt(s, in, n, out, len);
}
static CK_RV slow_DecryptInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) {
  round_trip();
  return real->C_DecryptInit(s, m, k);
}
static CK_RV slow_Decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR len) {
  round_trip();
  return real->C_Decrypt(s, in, n, out, len);
}
static CK_RV slow_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) {
  round_trip();
  return real->C_SignInit(s, m, k);
}
static CK_RV slow_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR len) {
  round_trip();
  return real->C_Sign(s, in, n, out, len);
}

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
    long delay = us ? atol(us) : 500;
    wire.tv_sec = delay / 1000000;
    wire.tv_nsec = (delay % 1000000) * 1000;
    wrapped = *inner;
    wrapped.C_EncryptInit = slow_EncryptInit;
    wrapped.C_Encrypt = slow_Encrypt;
    wrapped.C_DecryptInit = slow_DecryptInit;
    wrapped.C_Decrypt = slow_Decrypt;
    wrapped.C_SignInit = slow_SignInit;
    wrapped.C_Sign = slow_Sign;
    real = inner;
  }
  *list = &wrapped;
  return CKR_OK;
}
