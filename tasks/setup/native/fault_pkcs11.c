/*
 * A PKCS#11 module in front of a real one (SoftHSM2) that fails, hangs, slows down and locks PINs
 * on demand, per slot: the tests' stand-in for a network HSM that breaks, and the benchmarks'
 * stand-in for one that is far away. It forwards every call to the module named by
 * FAULT_PKCS11_MODULE, after doing what the control file named by FAULT_PKCS11_CONTROL says.
 *
 * The control file is looked at before every call (parsed again when it was replaced), so a test
 * changes behaviour at run time by writing a new file and renaming it over the old one (never a
 * half-written file). One rule a line:
 *
 *   all DELAY_US HANG FAIL LOCK_AFTER EPOCH        every slot
 *   slot ID DELAY_US HANG FAIL LOCK_AFTER EPOCH    slot ID (decimal CK_SLOT_ID); wins over `all`
 *
 *   DELAY_US    wait this long (without using a CPU) before each crypto call (C_*Init, C_Encrypt,
 *               C_Decrypt, C_Sign, C_Verify, C_Digest and their Update/Final), as a round trip to
 *               a network HSM would; -1 in a slot rule: as `all` says
 *   HANG        1: every call on the slot (its sessions' calls, C_GetTokenInfo, C_OpenSession,
 *               C_CloseAllSessions, C_GetMechanism*) waits until the rule says 0 again
 *   FAIL        a CK_RV (decimal) those calls return without calling on: the member looks dead
 *   LOCK_AFTER  N > 0: after N C_Login(CKU_USER) on the slot answered CKR_PIN_INCORRECT, every
 *               C_Login on it returns CKR_PIN_LOCKED and C_GetTokenInfo shows CKF_USER_PIN_LOCKED;
 *               -1 in a slot rule: as `all` says
 *   EPOCH       a new number restarts the wrong-PIN counts of the slots the rule covers
 *
 * Without the file nothing is added. A session's slot comes from the real C_GetSessionInfo.
 * Built by tasks/setup/fault_module.ts.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

#define MAX_RULES 32
#define HANG_POLL_US 2000

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST wrapped;
static const char *control_path;

struct rule {
  int all;
  CK_SLOT_ID slot;
  long delay_us;
  int hang;
  CK_RV fail;
  long lock_after;
  long epoch;
};

struct rules {
  int count;
  struct rule r[MAX_RULES];
};

/* What applies to one slot, `all` and its own rule merged. */
struct effect {
  long delay_us;
  int hang;
  CK_RV fail;
  long lock_after;
  long all_epoch;
  long slot_epoch;
};

/* Wrong-PIN counts, the one state this module keeps: per slot, since its epochs. */
struct pin_count {
  CK_SLOT_ID slot;
  long all_epoch;
  long slot_epoch;
  long wrong;
};
static struct pin_count pin_counts[MAX_RULES];
static int pin_count_slots;
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;

/* The control file's rules as last parsed, and which version of the file they came from. */
static struct rules cached_rules;
static struct stat cached_stat;
static int cached;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void parse_rules(struct rules *rules) {
  rules->count = 0;
  FILE *f = fopen(control_path, "r");
  if (f == NULL) return;
  char line[256];
  while (rules->count < MAX_RULES && fgets(line, sizeof line, f)) {
    struct rule r = {0};
    unsigned long fail;
    if (sscanf(line, "all %ld %d %lu %ld %ld", &r.delay_us, &r.hang, &fail, &r.lock_after,
               &r.epoch) == 5) {
      r.all = 1;
    } else if (sscanf(line, "slot %lu %ld %d %lu %ld %ld", &r.slot, &r.delay_us, &r.hang, &fail,
                      &r.lock_after, &r.epoch) != 6) {
      continue;
    }
    r.fail = fail;
    rules->r[rules->count++] = r;
  }
  fclose(f);
}

/* The rules now: parsed again only when the file was replaced (a stat per call, not a read). */
static void read_rules(struct rules *rules) {
  struct stat st;
  if (control_path == NULL || stat(control_path, &st) != 0) {
    rules->count = 0;
    return;
  }
  pthread_mutex_lock(&cache_lock);
  int hit = cached && same_file(&st, &cached_stat);
  if (hit) *rules = cached_rules;
  pthread_mutex_unlock(&cache_lock);
  if (hit) return;
  parse_rules(rules);
  pthread_mutex_lock(&cache_lock);
  cached_rules = *rules;
  cached_stat = st; /* if the file changed between stat and read, the next stat differs */
  cached = 1;
  pthread_mutex_unlock(&cache_lock);
}

static int has_slot_rules(const struct rules *rules) {
  for (int i = 0; i < rules->count; i++) {
    if (!rules->r[i].all) return 1;
  }
  return 0;
}

static struct effect effect_on(const struct rules *rules, int known, CK_SLOT_ID slot) {
  struct effect e = {0, 0, CKR_OK, 0, 0, 0};
  const struct rule *own = NULL;
  for (int i = 0; i < rules->count; i++) {
    const struct rule *r = &rules->r[i];
    if (r->all) {
      e.delay_us = r->delay_us;
      e.hang = r->hang;
      e.fail = r->fail;
      e.lock_after = r->lock_after;
      e.all_epoch = r->epoch;
    } else if (known && r->slot == slot) {
      own = r;
    }
  }
  if (own != NULL) {
    if (own->delay_us >= 0) e.delay_us = own->delay_us;
    e.hang = e.hang || own->hang;
    if (own->fail != CKR_OK) e.fail = own->fail;
    if (own->lock_after >= 0) e.lock_after = own->lock_after;
    e.slot_epoch = own->epoch;
  }
  return e;
}

static void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

/* The slot of a session, asked of the real module; 0 when it does not know the session. */
static int session_slot(CK_SESSION_HANDLE s, CK_SLOT_ID *slot) {
  CK_SESSION_INFO info;
  if (real->C_GetSessionInfo(s, &info) != CKR_OK) return 0;
  *slot = info.slotID;
  return 1;
}

/*
 * What a call on `slot` (or on session `s` when `by_session`) does before it is forwarded: hangs
 * while told to, then returns the CK_RV to answer instead, or CKR_OK after the delay (crypto
 * calls only). `effect` receives what applied.
 */
static CK_RV before(int by_session, CK_SESSION_HANDLE s, CK_SLOT_ID slot, int crypto,
                    struct effect *effect) {
  struct rules rules;
  int known = !by_session;
  for (;;) {
    read_rules(&rules);
    if (rules.count == 0) {
      *effect = effect_on(&rules, 0, 0);
      return CKR_OK;
    }
    if (!known && has_slot_rules(&rules)) known = session_slot(s, &slot);
    *effect = effect_on(&rules, known, slot);
    if (!effect->hang) break;
    sleep_us(HANG_POLL_US);
  }
  if (effect->fail != CKR_OK) return effect->fail;
  if (crypto && effect->delay_us > 0) sleep_us(effect->delay_us);
  return CKR_OK;
}

/* The wrong-PIN count of `slot` under the epochs of `e`, restarted when they changed. */
static struct pin_count *pin_count_of(CK_SLOT_ID slot, const struct effect *e) {
  struct pin_count *c = NULL;
  for (int i = 0; i < pin_count_slots; i++) {
    if (pin_counts[i].slot == slot) c = &pin_counts[i];
  }
  if (c == NULL) {
    if (pin_count_slots == MAX_RULES) return NULL;
    c = &pin_counts[pin_count_slots++];
    *c = (struct pin_count){slot, e->all_epoch, e->slot_epoch, 0};
  }
  if (c->all_epoch != e->all_epoch || c->slot_epoch != e->slot_epoch) {
    *c = (struct pin_count){slot, e->all_epoch, e->slot_epoch, 0};
  }
  return c;
}

static int pin_locked(CK_SLOT_ID slot, const struct effect *e) {
  if (e->lock_after <= 0) return 0;
  pthread_mutex_lock(&pin_lock);
  struct pin_count *c = pin_count_of(slot, e);
  int locked = c != NULL && c->wrong >= e->lock_after;
  pthread_mutex_unlock(&pin_lock);
  return locked;
}

static void count_wrong_pin(CK_SLOT_ID slot, const struct effect *e) {
  pthread_mutex_lock(&pin_lock);
  struct pin_count *c = pin_count_of(slot, e);
  if (c != NULL) c->wrong++;
  pthread_mutex_unlock(&pin_lock);
}

static CK_RV fault_Login(CK_SESSION_HANDLE s, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
                         CK_ULONG len) {
  struct effect e;
  CK_RV rv = before(1, s, 0, 0, &e);
  if (rv != CKR_OK) return rv;
  CK_SLOT_ID slot;
  if (who != CKU_USER || e.lock_after <= 0 || !session_slot(s, &slot)) {
    return real->C_Login(s, who, pin, len);
  }
  struct rules rules;
  read_rules(&rules);
  e = effect_on(&rules, 1, slot); /* with the slot's own rule, now that the slot is known */
  if (pin_locked(slot, &e)) return CKR_PIN_LOCKED;
  rv = real->C_Login(s, who, pin, len);
  if (rv == CKR_PIN_INCORRECT) count_wrong_pin(slot, &e);
  return rv;
}

static CK_RV fault_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  struct effect e;
  CK_RV rv = before(0, 0, slot, 0, &e);
  if (rv != CKR_OK) return rv;
  rv = real->C_GetTokenInfo(slot, info);
  if (rv == CKR_OK && pin_locked(slot, &e)) info->flags |= CKF_USER_PIN_LOCKED;
  return rv;
}

/* A call on a session: (name, crypto?, parameters after the session, arguments after it). */
#define ON_SESSION(name, crypto, params, ...)                   \
  static CK_RV fault_##name(CK_SESSION_HANDLE s params) {       \
    struct effect e;                                            \
    CK_RV rv = before(1, s, 0, crypto, &e);                     \
    return rv != CKR_OK ? rv : real->C_##name(s, ##__VA_ARGS__); \
  }
/* A call on a slot. */
#define ON_SLOT(name, params, ...)                            \
  static CK_RV fault_##name(CK_SLOT_ID slot params) {         \
    struct effect e;                                          \
    CK_RV rv = before(0, 0, slot, 0, &e);                     \
    return rv != CKR_OK ? rv : real->C_##name(slot, ##__VA_ARGS__); \
  }
#define P(...) , __VA_ARGS__
#define DATA_IN_OUT P(CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR len)
#define KEY_INIT P(CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)

ON_SLOT(GetMechanismList, P(CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR n), list, n)
ON_SLOT(GetMechanismInfo, P(CK_MECHANISM_TYPE t, CK_MECHANISM_INFO_PTR info), t, info)
ON_SLOT(OpenSession, P(CK_FLAGS f, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR h),
        f, app, notify, h)
ON_SLOT(CloseAllSessions, )

ON_SESSION(CloseSession, 0, )
ON_SESSION(GetSessionInfo, 0, P(CK_SESSION_INFO_PTR info), info)
ON_SESSION(GetOperationState, 0, P(CK_BYTE_PTR p, CK_ULONG_PTR n), p, n)
ON_SESSION(SetOperationState, 0, P(CK_BYTE_PTR p, CK_ULONG n, CK_OBJECT_HANDLE a,
                                   CK_OBJECT_HANDLE b), p, n, a, b)
ON_SESSION(Logout, 0, )
ON_SESSION(InitPIN, 0, P(CK_UTF8CHAR_PTR pin, CK_ULONG n), pin, n)
ON_SESSION(SetPIN, 0, P(CK_UTF8CHAR_PTR o, CK_ULONG on, CK_UTF8CHAR_PTR nw, CK_ULONG nn), o, on,
           nw, nn)
ON_SESSION(CreateObject, 0, P(CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR h), t, n, h)
ON_SESSION(CopyObject, 0, P(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                            CK_OBJECT_HANDLE_PTR h), o, t, n, h)
ON_SESSION(DestroyObject, 0, P(CK_OBJECT_HANDLE o), o)
ON_SESSION(GetObjectSize, 0, P(CK_OBJECT_HANDLE o, CK_ULONG_PTR n), o, n)
ON_SESSION(GetAttributeValue, 0, P(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), o, t, n)
ON_SESSION(SetAttributeValue, 0, P(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), o, t, n)
ON_SESSION(FindObjectsInit, 0, P(CK_ATTRIBUTE_PTR t, CK_ULONG n), t, n)
ON_SESSION(FindObjects, 0, P(CK_OBJECT_HANDLE_PTR h, CK_ULONG max, CK_ULONG_PTR n), h, max, n)
ON_SESSION(FindObjectsFinal, 0, )
ON_SESSION(EncryptInit, 1, KEY_INIT, m, k)
ON_SESSION(Encrypt, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(EncryptUpdate, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(EncryptFinal, 1, P(CK_BYTE_PTR out, CK_ULONG_PTR len), out, len)
ON_SESSION(DecryptInit, 1, KEY_INIT, m, k)
ON_SESSION(Decrypt, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(DecryptUpdate, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(DecryptFinal, 1, P(CK_BYTE_PTR out, CK_ULONG_PTR len), out, len)
ON_SESSION(DigestInit, 1, P(CK_MECHANISM_PTR m), m)
ON_SESSION(Digest, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(DigestUpdate, 1, P(CK_BYTE_PTR in, CK_ULONG n), in, n)
ON_SESSION(DigestKey, 1, P(CK_OBJECT_HANDLE k), k)
ON_SESSION(DigestFinal, 1, P(CK_BYTE_PTR out, CK_ULONG_PTR len), out, len)
ON_SESSION(SignInit, 1, KEY_INIT, m, k)
ON_SESSION(Sign, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(SignUpdate, 1, P(CK_BYTE_PTR in, CK_ULONG n), in, n)
ON_SESSION(SignFinal, 1, P(CK_BYTE_PTR out, CK_ULONG_PTR len), out, len)
ON_SESSION(SignRecoverInit, 1, KEY_INIT, m, k)
ON_SESSION(SignRecover, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(VerifyInit, 1, KEY_INIT, m, k)
ON_SESSION(Verify, 1, P(CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR sig, CK_ULONG sn), in, n, sig, sn)
ON_SESSION(VerifyUpdate, 1, P(CK_BYTE_PTR in, CK_ULONG n), in, n)
ON_SESSION(VerifyFinal, 1, P(CK_BYTE_PTR sig, CK_ULONG sn), sig, sn)
ON_SESSION(VerifyRecoverInit, 1, KEY_INIT, m, k)
ON_SESSION(VerifyRecover, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(DigestEncryptUpdate, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(DecryptDigestUpdate, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(SignEncryptUpdate, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(DecryptVerifyUpdate, 1, DATA_IN_OUT, in, n, out, len)
ON_SESSION(GenerateKey, 0, P(CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                             CK_OBJECT_HANDLE_PTR h), m, t, n, h)
ON_SESSION(GenerateKeyPair, 0, P(CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt, CK_ULONG pn,
                                 CK_ATTRIBUTE_PTR st, CK_ULONG sn, CK_OBJECT_HANDLE_PTR ph,
                                 CK_OBJECT_HANDLE_PTR sh), m, pt, pn, st, sn, ph, sh)
ON_SESSION(WrapKey, 1, P(CK_MECHANISM_PTR m, CK_OBJECT_HANDLE w, CK_OBJECT_HANDLE k,
                         CK_BYTE_PTR out, CK_ULONG_PTR len), m, w, k, out, len)
ON_SESSION(UnwrapKey, 1, P(CK_MECHANISM_PTR m, CK_OBJECT_HANDLE u, CK_BYTE_PTR in, CK_ULONG n,
                           CK_ATTRIBUTE_PTR t, CK_ULONG tn, CK_OBJECT_HANDLE_PTR h),
           m, u, in, n, t, tn, h)
ON_SESSION(DeriveKey, 1, P(CK_MECHANISM_PTR m, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                           CK_OBJECT_HANDLE_PTR h), m, b, t, n, h)
ON_SESSION(SeedRandom, 0, P(CK_BYTE_PTR p, CK_ULONG n), p, n)
ON_SESSION(GenerateRandom, 0, P(CK_BYTE_PTR p, CK_ULONG n), p, n)
ON_SESSION(GetFunctionStatus, 0, )
ON_SESSION(CancelFunction, 0, )

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (real == NULL) {
    const char *path = getenv("FAULT_PKCS11_MODULE");
    void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CK_C_GetFunctionList get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
    if (get == NULL) return CKR_GENERAL_ERROR;
    CK_FUNCTION_LIST_PTR inner;
    CK_RV rv = get(&inner);
    if (rv != CKR_OK) return rv;
    control_path = getenv("FAULT_PKCS11_CONTROL");
    wrapped = *inner;
#define WRAP(name) wrapped.C_##name = fault_##name
    WRAP(GetTokenInfo);
    WRAP(GetMechanismList);
    WRAP(GetMechanismInfo);
    WRAP(OpenSession);
    WRAP(CloseAllSessions);
    WRAP(CloseSession);
    WRAP(GetSessionInfo);
    WRAP(GetOperationState);
    WRAP(SetOperationState);
    WRAP(Login);
    WRAP(Logout);
    WRAP(InitPIN);
    WRAP(SetPIN);
    WRAP(CreateObject);
    WRAP(CopyObject);
    WRAP(DestroyObject);
    WRAP(GetObjectSize);
    WRAP(GetAttributeValue);
    WRAP(SetAttributeValue);
    WRAP(FindObjectsInit);
    WRAP(FindObjects);
    WRAP(FindObjectsFinal);
    WRAP(EncryptInit);
    WRAP(Encrypt);
    WRAP(EncryptUpdate);
    WRAP(EncryptFinal);
    WRAP(DecryptInit);
    WRAP(Decrypt);
    WRAP(DecryptUpdate);
    WRAP(DecryptFinal);
    WRAP(DigestInit);
    WRAP(Digest);
    WRAP(DigestUpdate);
    WRAP(DigestKey);
    WRAP(DigestFinal);
    WRAP(SignInit);
    WRAP(Sign);
    WRAP(SignUpdate);
    WRAP(SignFinal);
    WRAP(SignRecoverInit);
    WRAP(SignRecover);
    WRAP(VerifyInit);
    WRAP(Verify);
    WRAP(VerifyUpdate);
    WRAP(VerifyFinal);
    WRAP(VerifyRecoverInit);
    WRAP(VerifyRecover);
    WRAP(DigestEncryptUpdate);
    WRAP(DecryptDigestUpdate);
    WRAP(SignEncryptUpdate);
    WRAP(DecryptVerifyUpdate);
    WRAP(GenerateKey);
    WRAP(GenerateKeyPair);
    WRAP(WrapKey);
    WRAP(UnwrapKey);
    WRAP(DeriveKey);
    WRAP(SeedRandom);
    WRAP(GenerateRandom);
    WRAP(GetFunctionStatus);
    WRAP(CancelFunction);
#undef WRAP
    real = inner;
  }
  *list = &wrapped;
  return CKR_OK;
}
