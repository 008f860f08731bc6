// sacreBLEU-compatible corpus BLEU and chrF: text handling (UTF-8, Python's whitespace and
// lowercasing), the 13a tokenizer, n-gram statistics and the scores. See bleu.hpp.
//
// Floating-point results equal sacreBLEU's because every formula keeps Python's operation order
// and uses the same libm exp/log; this relies on no FMA contraction (ISO -std=c++20 implies
// -ffp-contract=off in GCC).
#include "eval/bleu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <utility>

#include "base/error.hpp"

#ifndef LM_VERSION
#error "LM_VERSION must be defined by the build (see the top-level CMakeLists.txt)"
#endif

namespace lm::eval {

namespace {

// ---- Unicode tables, derived from Python 3.11.7 (Unicode 14.0.0) -------------------------------
// kLowerRuns: every step-th code point in [first, last] has chr(c).lower() == chr(c + delta);
// built by scanning all code points and merging neighbours (gap 1 or 2) with equal deltas. The only
// code point whose lower() is longer is U+0130 -> "i\u0307", handled in code.
// kCaseSpans: kind 1 = case-ignorable, 2 = cased and not case-ignorable, as str.lower()'s final
// sigma rule sees them; probed per code point c with
//   a = ('A' + c + '\u03a3').lower()[-1] == '\u03c2'   (c ignorable, or c cased)
//   b = ('A\u03a3' + c).lower()[1] == '\u03c2'          (c ignorable, or c not cased)
// kind = 1 if a and b, 2 if a only, else 0 (omitted). Ranges of equal kind are merged.
struct LowerRun {
  char32_t first, last;
  int step, delta;
};
struct CaseSpan {
  char32_t first, last;
  int kind;
};

constexpr LowerRun kLowerRuns[] = {
    {0x41, 0x5A, 1, 32}, {0xC0, 0xD6, 1, 32}, {0xD8, 0xDE, 1, 32}, {0x100, 0x12E, 2, 1},
    {0x132, 0x136, 2, 1}, {0x139, 0x147, 2, 1}, {0x14A, 0x176, 2, 1}, {0x178, 0x178, 1, -121},
    {0x179, 0x17D, 2, 1}, {0x181, 0x181, 1, 210}, {0x182, 0x184, 2, 1}, {0x186, 0x186, 1, 206},
    {0x187, 0x187, 1, 1}, {0x189, 0x18A, 1, 205}, {0x18B, 0x18B, 1, 1}, {0x18E, 0x18E, 1, 79},
    {0x18F, 0x18F, 1, 202}, {0x190, 0x190, 1, 203}, {0x191, 0x191, 1, 1}, {0x193, 0x193, 1, 205},
    {0x194, 0x194, 1, 207}, {0x196, 0x196, 1, 211}, {0x197, 0x197, 1, 209}, {0x198, 0x198, 1, 1},
    {0x19C, 0x19C, 1, 211}, {0x19D, 0x19D, 1, 213}, {0x19F, 0x19F, 1, 214}, {0x1A0, 0x1A4, 2, 1},
    {0x1A6, 0x1A6, 1, 218}, {0x1A7, 0x1A7, 1, 1}, {0x1A9, 0x1A9, 1, 218}, {0x1AC, 0x1AC, 1, 1},
    {0x1AE, 0x1AE, 1, 218}, {0x1AF, 0x1AF, 1, 1}, {0x1B1, 0x1B2, 1, 217}, {0x1B3, 0x1B5, 2, 1},
    {0x1B7, 0x1B7, 1, 219}, {0x1B8, 0x1B8, 1, 1}, {0x1BC, 0x1BC, 1, 1}, {0x1C4, 0x1C4, 1, 2},
    {0x1C5, 0x1C5, 1, 1}, {0x1C7, 0x1C7, 1, 2}, {0x1C8, 0x1C8, 1, 1}, {0x1CA, 0x1CA, 1, 2},
    {0x1CB, 0x1DB, 2, 1}, {0x1DE, 0x1EE, 2, 1}, {0x1F1, 0x1F1, 1, 2}, {0x1F2, 0x1F4, 2, 1},
    {0x1F6, 0x1F6, 1, -97}, {0x1F7, 0x1F7, 1, -56}, {0x1F8, 0x21E, 2, 1}, {0x220, 0x220, 1, -130},
    {0x222, 0x232, 2, 1}, {0x23A, 0x23A, 1, 10795}, {0x23B, 0x23B, 1, 1}, {0x23D, 0x23D, 1, -163},
    {0x23E, 0x23E, 1, 10792}, {0x241, 0x241, 1, 1}, {0x243, 0x243, 1, -195}, {0x244, 0x244, 1, 69},
    {0x245, 0x245, 1, 71}, {0x246, 0x24E, 2, 1}, {0x370, 0x372, 2, 1}, {0x376, 0x376, 1, 1},
    {0x37F, 0x37F, 1, 116}, {0x386, 0x386, 1, 38}, {0x388, 0x38A, 1, 37}, {0x38C, 0x38C, 1, 64},
    {0x38E, 0x38F, 1, 63}, {0x391, 0x3A1, 1, 32}, {0x3A3, 0x3AB, 1, 32}, {0x3CF, 0x3CF, 1, 8},
    {0x3D8, 0x3EE, 2, 1}, {0x3F4, 0x3F4, 1, -60}, {0x3F7, 0x3F7, 1, 1}, {0x3F9, 0x3F9, 1, -7},
    {0x3FA, 0x3FA, 1, 1}, {0x3FD, 0x3FF, 1, -130}, {0x400, 0x40F, 1, 80}, {0x410, 0x42F, 1, 32},
    {0x460, 0x480, 2, 1}, {0x48A, 0x4BE, 2, 1}, {0x4C0, 0x4C0, 1, 15}, {0x4C1, 0x4CD, 2, 1},
    {0x4D0, 0x52E, 2, 1}, {0x531, 0x556, 1, 48}, {0x10A0, 0x10C5, 1, 7264}, {0x10C7, 0x10C7, 1, 7264},
    {0x10CD, 0x10CD, 1, 7264}, {0x13A0, 0x13EF, 1, 38864}, {0x13F0, 0x13F5, 1, 8}, {0x1C90, 0x1CBA, 1, -3008},
    {0x1CBD, 0x1CBF, 1, -3008}, {0x1E00, 0x1E94, 2, 1}, {0x1E9E, 0x1E9E, 1, -7615}, {0x1EA0, 0x1EFE, 2, 1},
    {0x1F08, 0x1F0F, 1, -8}, {0x1F18, 0x1F1D, 1, -8}, {0x1F28, 0x1F2F, 1, -8}, {0x1F38, 0x1F3F, 1, -8},
    {0x1F48, 0x1F4D, 1, -8}, {0x1F59, 0x1F5F, 2, -8}, {0x1F68, 0x1F6F, 1, -8}, {0x1F88, 0x1F8F, 1, -8},
    {0x1F98, 0x1F9F, 1, -8}, {0x1FA8, 0x1FAF, 1, -8}, {0x1FB8, 0x1FB9, 1, -8}, {0x1FBA, 0x1FBB, 1, -74},
    {0x1FBC, 0x1FBC, 1, -9}, {0x1FC8, 0x1FCB, 1, -86}, {0x1FCC, 0x1FCC, 1, -9}, {0x1FD8, 0x1FD9, 1, -8},
    {0x1FDA, 0x1FDB, 1, -100}, {0x1FE8, 0x1FE9, 1, -8}, {0x1FEA, 0x1FEB, 1, -112}, {0x1FEC, 0x1FEC, 1, -7},
    {0x1FF8, 0x1FF9, 1, -128}, {0x1FFA, 0x1FFB, 1, -126}, {0x1FFC, 0x1FFC, 1, -9}, {0x2126, 0x2126, 1, -7517},
    {0x212A, 0x212A, 1, -8383}, {0x212B, 0x212B, 1, -8262}, {0x2132, 0x2132, 1, 28}, {0x2160, 0x216F, 1, 16},
    {0x2183, 0x2183, 1, 1}, {0x24B6, 0x24CF, 1, 26}, {0x2C00, 0x2C2F, 1, 48}, {0x2C60, 0x2C60, 1, 1},
    {0x2C62, 0x2C62, 1, -10743}, {0x2C63, 0x2C63, 1, -3814}, {0x2C64, 0x2C64, 1, -10727}, {0x2C67, 0x2C6B, 2, 1},
    {0x2C6D, 0x2C6D, 1, -10780}, {0x2C6E, 0x2C6E, 1, -10749}, {0x2C6F, 0x2C6F, 1, -10783}, {0x2C70, 0x2C70, 1, -10782},
    {0x2C72, 0x2C72, 1, 1}, {0x2C75, 0x2C75, 1, 1}, {0x2C7E, 0x2C7F, 1, -10815}, {0x2C80, 0x2CE2, 2, 1},
    {0x2CEB, 0x2CED, 2, 1}, {0x2CF2, 0x2CF2, 1, 1}, {0xA640, 0xA66C, 2, 1}, {0xA680, 0xA69A, 2, 1},
    {0xA722, 0xA72E, 2, 1}, {0xA732, 0xA76E, 2, 1}, {0xA779, 0xA77B, 2, 1}, {0xA77D, 0xA77D, 1, -35332},
    {0xA77E, 0xA786, 2, 1}, {0xA78B, 0xA78B, 1, 1}, {0xA78D, 0xA78D, 1, -42280}, {0xA790, 0xA792, 2, 1},
    {0xA796, 0xA7A8, 2, 1}, {0xA7AA, 0xA7AA, 1, -42308}, {0xA7AB, 0xA7AB, 1, -42319}, {0xA7AC, 0xA7AC, 1, -42315},
    {0xA7AD, 0xA7AD, 1, -42305}, {0xA7AE, 0xA7AE, 1, -42308}, {0xA7B0, 0xA7B0, 1, -42258}, {0xA7B1, 0xA7B1, 1, -42282},
    {0xA7B2, 0xA7B2, 1, -42261}, {0xA7B3, 0xA7B3, 1, 928}, {0xA7B4, 0xA7C2, 2, 1}, {0xA7C4, 0xA7C4, 1, -48},
    {0xA7C5, 0xA7C5, 1, -42307}, {0xA7C6, 0xA7C6, 1, -35384}, {0xA7C7, 0xA7C9, 2, 1}, {0xA7D0, 0xA7D0, 1, 1},
    {0xA7D6, 0xA7D8, 2, 1}, {0xA7F5, 0xA7F5, 1, 1}, {0xFF21, 0xFF3A, 1, 32}, {0x10400, 0x10427, 1, 40},
    {0x104B0, 0x104D3, 1, 40}, {0x10570, 0x1057A, 1, 39}, {0x1057C, 0x1058A, 1, 39}, {0x1058C, 0x10592, 1, 39},
    {0x10594, 0x10595, 1, 39}, {0x10C80, 0x10CB2, 1, 64}, {0x118A0, 0x118BF, 1, 32}, {0x16E40, 0x16E5F, 1, 32},
    {0x1E900, 0x1E921, 1, 34},
};
constexpr CaseSpan kCaseSpans[] = {
    {0x27, 0x27, 1}, {0x2E, 0x2E, 1}, {0x3A, 0x3A, 1}, {0x41, 0x5A, 2}, {0x5E, 0x5E, 1},
    {0x60, 0x60, 1}, {0x61, 0x7A, 2}, {0xA8, 0xA8, 1}, {0xAA, 0xAA, 2}, {0xAD, 0xAD, 1},
    {0xAF, 0xAF, 1}, {0xB4, 0xB4, 1}, {0xB5, 0xB5, 2}, {0xB7, 0xB8, 1}, {0xBA, 0xBA, 2},
    {0xC0, 0xD6, 2}, {0xD8, 0xF6, 2}, {0xF8, 0x1BA, 2}, {0x1BC, 0x1BF, 2}, {0x1C4, 0x293, 2},
    {0x295, 0x2AF, 2}, {0x2B0, 0x36F, 1}, {0x370, 0x373, 2}, {0x374, 0x375, 1}, {0x376, 0x377, 2},
    {0x37A, 0x37A, 1}, {0x37B, 0x37D, 2}, {0x37F, 0x37F, 2}, {0x384, 0x385, 1}, {0x386, 0x386, 2},
    {0x387, 0x387, 1}, {0x388, 0x38A, 2}, {0x38C, 0x38C, 2}, {0x38E, 0x3A1, 2}, {0x3A3, 0x3F5, 2},
    {0x3F7, 0x481, 2}, {0x483, 0x489, 1}, {0x48A, 0x52F, 2}, {0x531, 0x556, 2}, {0x559, 0x559, 1},
    {0x55F, 0x55F, 1}, {0x560, 0x588, 2}, {0x591, 0x5BD, 1}, {0x5BF, 0x5BF, 1}, {0x5C1, 0x5C2, 1},
    {0x5C4, 0x5C5, 1}, {0x5C7, 0x5C7, 1}, {0x5F4, 0x5F4, 1}, {0x600, 0x605, 1}, {0x610, 0x61A, 1},
    {0x61C, 0x61C, 1}, {0x640, 0x640, 1}, {0x64B, 0x65F, 1}, {0x670, 0x670, 1}, {0x6D6, 0x6DD, 1},
    {0x6DF, 0x6E8, 1}, {0x6EA, 0x6ED, 1}, {0x70F, 0x70F, 1}, {0x711, 0x711, 1}, {0x730, 0x74A, 1},
    {0x7A6, 0x7B0, 1}, {0x7EB, 0x7F5, 1}, {0x7FA, 0x7FA, 1}, {0x7FD, 0x7FD, 1}, {0x816, 0x82D, 1},
    {0x859, 0x85B, 1}, {0x888, 0x888, 1}, {0x890, 0x891, 1}, {0x898, 0x89F, 1}, {0x8C9, 0x902, 1},
    {0x93A, 0x93A, 1}, {0x93C, 0x93C, 1}, {0x941, 0x948, 1}, {0x94D, 0x94D, 1}, {0x951, 0x957, 1},
    {0x962, 0x963, 1}, {0x971, 0x971, 1}, {0x981, 0x981, 1}, {0x9BC, 0x9BC, 1}, {0x9C1, 0x9C4, 1},
    {0x9CD, 0x9CD, 1}, {0x9E2, 0x9E3, 1}, {0x9FE, 0x9FE, 1}, {0xA01, 0xA02, 1}, {0xA3C, 0xA3C, 1},
    {0xA41, 0xA42, 1}, {0xA47, 0xA48, 1}, {0xA4B, 0xA4D, 1}, {0xA51, 0xA51, 1}, {0xA70, 0xA71, 1},
    {0xA75, 0xA75, 1}, {0xA81, 0xA82, 1}, {0xABC, 0xABC, 1}, {0xAC1, 0xAC5, 1}, {0xAC7, 0xAC8, 1},
    {0xACD, 0xACD, 1}, {0xAE2, 0xAE3, 1}, {0xAFA, 0xAFF, 1}, {0xB01, 0xB01, 1}, {0xB3C, 0xB3C, 1},
    {0xB3F, 0xB3F, 1}, {0xB41, 0xB44, 1}, {0xB4D, 0xB4D, 1}, {0xB55, 0xB56, 1}, {0xB62, 0xB63, 1},
    {0xB82, 0xB82, 1}, {0xBC0, 0xBC0, 1}, {0xBCD, 0xBCD, 1}, {0xC00, 0xC00, 1}, {0xC04, 0xC04, 1},
    {0xC3C, 0xC3C, 1}, {0xC3E, 0xC40, 1}, {0xC46, 0xC48, 1}, {0xC4A, 0xC4D, 1}, {0xC55, 0xC56, 1},
    {0xC62, 0xC63, 1}, {0xC81, 0xC81, 1}, {0xCBC, 0xCBC, 1}, {0xCBF, 0xCBF, 1}, {0xCC6, 0xCC6, 1},
    {0xCCC, 0xCCD, 1}, {0xCE2, 0xCE3, 1}, {0xD00, 0xD01, 1}, {0xD3B, 0xD3C, 1}, {0xD41, 0xD44, 1},
    {0xD4D, 0xD4D, 1}, {0xD62, 0xD63, 1}, {0xD81, 0xD81, 1}, {0xDCA, 0xDCA, 1}, {0xDD2, 0xDD4, 1},
    {0xDD6, 0xDD6, 1}, {0xE31, 0xE31, 1}, {0xE34, 0xE3A, 1}, {0xE46, 0xE4E, 1}, {0xEB1, 0xEB1, 1},
    {0xEB4, 0xEBC, 1}, {0xEC6, 0xEC6, 1}, {0xEC8, 0xECD, 1}, {0xF18, 0xF19, 1}, {0xF35, 0xF35, 1},
    {0xF37, 0xF37, 1}, {0xF39, 0xF39, 1}, {0xF71, 0xF7E, 1}, {0xF80, 0xF84, 1}, {0xF86, 0xF87, 1},
    {0xF8D, 0xF97, 1}, {0xF99, 0xFBC, 1}, {0xFC6, 0xFC6, 1}, {0x102D, 0x1030, 1}, {0x1032, 0x1037, 1},
    {0x1039, 0x103A, 1}, {0x103D, 0x103E, 1}, {0x1058, 0x1059, 1}, {0x105E, 0x1060, 1}, {0x1071, 0x1074, 1},
    {0x1082, 0x1082, 1}, {0x1085, 0x1086, 1}, {0x108D, 0x108D, 1}, {0x109D, 0x109D, 1}, {0x10A0, 0x10C5, 2},
    {0x10C7, 0x10C7, 2}, {0x10CD, 0x10CD, 2}, {0x10D0, 0x10FA, 2}, {0x10FC, 0x10FC, 1}, {0x10FD, 0x10FF, 2},
    {0x135D, 0x135F, 1}, {0x13A0, 0x13F5, 2}, {0x13F8, 0x13FD, 2}, {0x1712, 0x1714, 1}, {0x1732, 0x1733, 1},
    {0x1752, 0x1753, 1}, {0x1772, 0x1773, 1}, {0x17B4, 0x17B5, 1}, {0x17B7, 0x17BD, 1}, {0x17C6, 0x17C6, 1},
    {0x17C9, 0x17D3, 1}, {0x17D7, 0x17D7, 1}, {0x17DD, 0x17DD, 1}, {0x180B, 0x180F, 1}, {0x1843, 0x1843, 1},
    {0x1885, 0x1886, 1}, {0x18A9, 0x18A9, 1}, {0x1920, 0x1922, 1}, {0x1927, 0x1928, 1}, {0x1932, 0x1932, 1},
    {0x1939, 0x193B, 1}, {0x1A17, 0x1A18, 1}, {0x1A1B, 0x1A1B, 1}, {0x1A56, 0x1A56, 1}, {0x1A58, 0x1A5E, 1},
    {0x1A60, 0x1A60, 1}, {0x1A62, 0x1A62, 1}, {0x1A65, 0x1A6C, 1}, {0x1A73, 0x1A7C, 1}, {0x1A7F, 0x1A7F, 1},
    {0x1AA7, 0x1AA7, 1}, {0x1AB0, 0x1ACE, 1}, {0x1B00, 0x1B03, 1}, {0x1B34, 0x1B34, 1}, {0x1B36, 0x1B3A, 1},
    {0x1B3C, 0x1B3C, 1}, {0x1B42, 0x1B42, 1}, {0x1B6B, 0x1B73, 1}, {0x1B80, 0x1B81, 1}, {0x1BA2, 0x1BA5, 1},
    {0x1BA8, 0x1BA9, 1}, {0x1BAB, 0x1BAD, 1}, {0x1BE6, 0x1BE6, 1}, {0x1BE8, 0x1BE9, 1}, {0x1BED, 0x1BED, 1},
    {0x1BEF, 0x1BF1, 1}, {0x1C2C, 0x1C33, 1}, {0x1C36, 0x1C37, 1}, {0x1C78, 0x1C7D, 1}, {0x1C80, 0x1C88, 2},
    {0x1C90, 0x1CBA, 2}, {0x1CBD, 0x1CBF, 2}, {0x1CD0, 0x1CD2, 1}, {0x1CD4, 0x1CE0, 1}, {0x1CE2, 0x1CE8, 1},
    {0x1CED, 0x1CED, 1}, {0x1CF4, 0x1CF4, 1}, {0x1CF8, 0x1CF9, 1}, {0x1D00, 0x1D2B, 2}, {0x1D2C, 0x1D6A, 1},
    {0x1D6B, 0x1D77, 2}, {0x1D78, 0x1D78, 1}, {0x1D79, 0x1D9A, 2}, {0x1D9B, 0x1DFF, 1}, {0x1E00, 0x1F15, 2},
    {0x1F18, 0x1F1D, 2}, {0x1F20, 0x1F45, 2}, {0x1F48, 0x1F4D, 2}, {0x1F50, 0x1F57, 2}, {0x1F59, 0x1F59, 2},
    {0x1F5B, 0x1F5B, 2}, {0x1F5D, 0x1F5D, 2}, {0x1F5F, 0x1F7D, 2}, {0x1F80, 0x1FB4, 2}, {0x1FB6, 0x1FBC, 2},
    {0x1FBD, 0x1FBD, 1}, {0x1FBE, 0x1FBE, 2}, {0x1FBF, 0x1FC1, 1}, {0x1FC2, 0x1FC4, 2}, {0x1FC6, 0x1FCC, 2},
    {0x1FCD, 0x1FCF, 1}, {0x1FD0, 0x1FD3, 2}, {0x1FD6, 0x1FDB, 2}, {0x1FDD, 0x1FDF, 1}, {0x1FE0, 0x1FEC, 2},
    {0x1FED, 0x1FEF, 1}, {0x1FF2, 0x1FF4, 2}, {0x1FF6, 0x1FFC, 2}, {0x1FFD, 0x1FFE, 1}, {0x200B, 0x200F, 1},
    {0x2018, 0x2019, 1}, {0x2024, 0x2024, 1}, {0x2027, 0x2027, 1}, {0x202A, 0x202E, 1}, {0x2060, 0x2064, 1},
    {0x2066, 0x206F, 1}, {0x2071, 0x2071, 1}, {0x207F, 0x207F, 1}, {0x2090, 0x209C, 1}, {0x20D0, 0x20F0, 1},
    {0x2102, 0x2102, 2}, {0x2107, 0x2107, 2}, {0x210A, 0x2113, 2}, {0x2115, 0x2115, 2}, {0x2119, 0x211D, 2},
    {0x2124, 0x2124, 2}, {0x2126, 0x2126, 2}, {0x2128, 0x2128, 2}, {0x212A, 0x212D, 2}, {0x212F, 0x2134, 2},
    {0x2139, 0x2139, 2}, {0x213C, 0x213F, 2}, {0x2145, 0x2149, 2}, {0x214E, 0x214E, 2}, {0x2160, 0x217F, 2},
    {0x2183, 0x2184, 2}, {0x24B6, 0x24E9, 2}, {0x2C00, 0x2C7B, 2}, {0x2C7C, 0x2C7D, 1}, {0x2C7E, 0x2CE4, 2},
    {0x2CEB, 0x2CEE, 2}, {0x2CEF, 0x2CF1, 1}, {0x2CF2, 0x2CF3, 2}, {0x2D00, 0x2D25, 2}, {0x2D27, 0x2D27, 2},
    {0x2D2D, 0x2D2D, 2}, {0x2D6F, 0x2D6F, 1}, {0x2D7F, 0x2D7F, 1}, {0x2DE0, 0x2DFF, 1}, {0x2E2F, 0x2E2F, 1},
    {0x3005, 0x3005, 1}, {0x302A, 0x302D, 1}, {0x3031, 0x3035, 1}, {0x303B, 0x303B, 1}, {0x3099, 0x309E, 1},
    {0x30FC, 0x30FE, 1}, {0xA015, 0xA015, 1}, {0xA4F8, 0xA4FD, 1}, {0xA60C, 0xA60C, 1}, {0xA640, 0xA66D, 2},
    {0xA66F, 0xA672, 1}, {0xA674, 0xA67D, 1}, {0xA67F, 0xA67F, 1}, {0xA680, 0xA69B, 2}, {0xA69C, 0xA69F, 1},
    {0xA6F0, 0xA6F1, 1}, {0xA700, 0xA721, 1}, {0xA722, 0xA76F, 2}, {0xA770, 0xA770, 1}, {0xA771, 0xA787, 2},
    {0xA788, 0xA78A, 1}, {0xA78B, 0xA78E, 2}, {0xA790, 0xA7CA, 2}, {0xA7D0, 0xA7D1, 2}, {0xA7D3, 0xA7D3, 2},
    {0xA7D5, 0xA7D9, 2}, {0xA7F2, 0xA7F4, 1}, {0xA7F5, 0xA7F6, 2}, {0xA7F8, 0xA7F9, 1}, {0xA7FA, 0xA7FA, 2},
    {0xA802, 0xA802, 1}, {0xA806, 0xA806, 1}, {0xA80B, 0xA80B, 1}, {0xA825, 0xA826, 1}, {0xA82C, 0xA82C, 1},
    {0xA8C4, 0xA8C5, 1}, {0xA8E0, 0xA8F1, 1}, {0xA8FF, 0xA8FF, 1}, {0xA926, 0xA92D, 1}, {0xA947, 0xA951, 1},
    {0xA980, 0xA982, 1}, {0xA9B3, 0xA9B3, 1}, {0xA9B6, 0xA9B9, 1}, {0xA9BC, 0xA9BD, 1}, {0xA9CF, 0xA9CF, 1},
    {0xA9E5, 0xA9E6, 1}, {0xAA29, 0xAA2E, 1}, {0xAA31, 0xAA32, 1}, {0xAA35, 0xAA36, 1}, {0xAA43, 0xAA43, 1},
    {0xAA4C, 0xAA4C, 1}, {0xAA70, 0xAA70, 1}, {0xAA7C, 0xAA7C, 1}, {0xAAB0, 0xAAB0, 1}, {0xAAB2, 0xAAB4, 1},
    {0xAAB7, 0xAAB8, 1}, {0xAABE, 0xAABF, 1}, {0xAAC1, 0xAAC1, 1}, {0xAADD, 0xAADD, 1}, {0xAAEC, 0xAAED, 1},
    {0xAAF3, 0xAAF4, 1}, {0xAAF6, 0xAAF6, 1}, {0xAB30, 0xAB5A, 2}, {0xAB5B, 0xAB5F, 1}, {0xAB60, 0xAB68, 2},
    {0xAB69, 0xAB6B, 1}, {0xAB70, 0xABBF, 2}, {0xABE5, 0xABE5, 1}, {0xABE8, 0xABE8, 1}, {0xABED, 0xABED, 1},
    {0xFB00, 0xFB06, 2}, {0xFB13, 0xFB17, 2}, {0xFB1E, 0xFB1E, 1}, {0xFBB2, 0xFBC2, 1}, {0xFE00, 0xFE0F, 1},
    {0xFE13, 0xFE13, 1}, {0xFE20, 0xFE2F, 1}, {0xFE52, 0xFE52, 1}, {0xFE55, 0xFE55, 1}, {0xFEFF, 0xFEFF, 1},
    {0xFF07, 0xFF07, 1}, {0xFF0E, 0xFF0E, 1}, {0xFF1A, 0xFF1A, 1}, {0xFF21, 0xFF3A, 2}, {0xFF3E, 0xFF3E, 1},
    {0xFF40, 0xFF40, 1}, {0xFF41, 0xFF5A, 2}, {0xFF70, 0xFF70, 1}, {0xFF9E, 0xFF9F, 1}, {0xFFE3, 0xFFE3, 1},
    {0xFFF9, 0xFFFB, 1}, {0x101FD, 0x101FD, 1}, {0x102E0, 0x102E0, 1}, {0x10376, 0x1037A, 1}, {0x10400, 0x1044F, 2},
    {0x104B0, 0x104D3, 2}, {0x104D8, 0x104FB, 2}, {0x10570, 0x1057A, 2}, {0x1057C, 0x1058A, 2}, {0x1058C, 0x10592, 2},
    {0x10594, 0x10595, 2}, {0x10597, 0x105A1, 2}, {0x105A3, 0x105B1, 2}, {0x105B3, 0x105B9, 2}, {0x105BB, 0x105BC, 2},
    {0x10780, 0x10785, 1}, {0x10787, 0x107B0, 1}, {0x107B2, 0x107BA, 1}, {0x10A01, 0x10A03, 1}, {0x10A05, 0x10A06, 1},
    {0x10A0C, 0x10A0F, 1}, {0x10A38, 0x10A3A, 1}, {0x10A3F, 0x10A3F, 1}, {0x10AE5, 0x10AE6, 1}, {0x10C80, 0x10CB2, 2},
    {0x10CC0, 0x10CF2, 2}, {0x10D24, 0x10D27, 1}, {0x10EAB, 0x10EAC, 1}, {0x10F46, 0x10F50, 1}, {0x10F82, 0x10F85, 1},
    {0x11001, 0x11001, 1}, {0x11038, 0x11046, 1}, {0x11070, 0x11070, 1}, {0x11073, 0x11074, 1}, {0x1107F, 0x11081, 1},
    {0x110B3, 0x110B6, 1}, {0x110B9, 0x110BA, 1}, {0x110BD, 0x110BD, 1}, {0x110C2, 0x110C2, 1}, {0x110CD, 0x110CD, 1},
    {0x11100, 0x11102, 1}, {0x11127, 0x1112B, 1}, {0x1112D, 0x11134, 1}, {0x11173, 0x11173, 1}, {0x11180, 0x11181, 1},
    {0x111B6, 0x111BE, 1}, {0x111C9, 0x111CC, 1}, {0x111CF, 0x111CF, 1}, {0x1122F, 0x11231, 1}, {0x11234, 0x11234, 1},
    {0x11236, 0x11237, 1}, {0x1123E, 0x1123E, 1}, {0x112DF, 0x112DF, 1}, {0x112E3, 0x112EA, 1}, {0x11300, 0x11301, 1},
    {0x1133B, 0x1133C, 1}, {0x11340, 0x11340, 1}, {0x11366, 0x1136C, 1}, {0x11370, 0x11374, 1}, {0x11438, 0x1143F, 1},
    {0x11442, 0x11444, 1}, {0x11446, 0x11446, 1}, {0x1145E, 0x1145E, 1}, {0x114B3, 0x114B8, 1}, {0x114BA, 0x114BA, 1},
    {0x114BF, 0x114C0, 1}, {0x114C2, 0x114C3, 1}, {0x115B2, 0x115B5, 1}, {0x115BC, 0x115BD, 1}, {0x115BF, 0x115C0, 1},
    {0x115DC, 0x115DD, 1}, {0x11633, 0x1163A, 1}, {0x1163D, 0x1163D, 1}, {0x1163F, 0x11640, 1}, {0x116AB, 0x116AB, 1},
    {0x116AD, 0x116AD, 1}, {0x116B0, 0x116B5, 1}, {0x116B7, 0x116B7, 1}, {0x1171D, 0x1171F, 1}, {0x11722, 0x11725, 1},
    {0x11727, 0x1172B, 1}, {0x1182F, 0x11837, 1}, {0x11839, 0x1183A, 1}, {0x118A0, 0x118DF, 2}, {0x1193B, 0x1193C, 1},
    {0x1193E, 0x1193E, 1}, {0x11943, 0x11943, 1}, {0x119D4, 0x119D7, 1}, {0x119DA, 0x119DB, 1}, {0x119E0, 0x119E0, 1},
    {0x11A01, 0x11A0A, 1}, {0x11A33, 0x11A38, 1}, {0x11A3B, 0x11A3E, 1}, {0x11A47, 0x11A47, 1}, {0x11A51, 0x11A56, 1},
    {0x11A59, 0x11A5B, 1}, {0x11A8A, 0x11A96, 1}, {0x11A98, 0x11A99, 1}, {0x11C30, 0x11C36, 1}, {0x11C38, 0x11C3D, 1},
    {0x11C3F, 0x11C3F, 1}, {0x11C92, 0x11CA7, 1}, {0x11CAA, 0x11CB0, 1}, {0x11CB2, 0x11CB3, 1}, {0x11CB5, 0x11CB6, 1},
    {0x11D31, 0x11D36, 1}, {0x11D3A, 0x11D3A, 1}, {0x11D3C, 0x11D3D, 1}, {0x11D3F, 0x11D45, 1}, {0x11D47, 0x11D47, 1},
    {0x11D90, 0x11D91, 1}, {0x11D95, 0x11D95, 1}, {0x11D97, 0x11D97, 1}, {0x11EF3, 0x11EF4, 1}, {0x13430, 0x13438, 1},
    {0x16AF0, 0x16AF4, 1}, {0x16B30, 0x16B36, 1}, {0x16B40, 0x16B43, 1}, {0x16E40, 0x16E7F, 2}, {0x16F4F, 0x16F4F, 1},
    {0x16F8F, 0x16F9F, 1}, {0x16FE0, 0x16FE1, 1}, {0x16FE3, 0x16FE4, 1}, {0x1AFF0, 0x1AFF3, 1}, {0x1AFF5, 0x1AFFB, 1},
    {0x1AFFD, 0x1AFFE, 1}, {0x1BC9D, 0x1BC9E, 1}, {0x1BCA0, 0x1BCA3, 1}, {0x1CF00, 0x1CF2D, 1}, {0x1CF30, 0x1CF46, 1},
    {0x1D167, 0x1D169, 1}, {0x1D173, 0x1D182, 1}, {0x1D185, 0x1D18B, 1}, {0x1D1AA, 0x1D1AD, 1}, {0x1D242, 0x1D244, 1},
    {0x1D400, 0x1D454, 2}, {0x1D456, 0x1D49C, 2}, {0x1D49E, 0x1D49F, 2}, {0x1D4A2, 0x1D4A2, 2}, {0x1D4A5, 0x1D4A6, 2},
    {0x1D4A9, 0x1D4AC, 2}, {0x1D4AE, 0x1D4B9, 2}, {0x1D4BB, 0x1D4BB, 2}, {0x1D4BD, 0x1D4C3, 2}, {0x1D4C5, 0x1D505, 2},
    {0x1D507, 0x1D50A, 2}, {0x1D50D, 0x1D514, 2}, {0x1D516, 0x1D51C, 2}, {0x1D51E, 0x1D539, 2}, {0x1D53B, 0x1D53E, 2},
    {0x1D540, 0x1D544, 2}, {0x1D546, 0x1D546, 2}, {0x1D54A, 0x1D550, 2}, {0x1D552, 0x1D6A5, 2}, {0x1D6A8, 0x1D6C0, 2},
    {0x1D6C2, 0x1D6DA, 2}, {0x1D6DC, 0x1D6FA, 2}, {0x1D6FC, 0x1D714, 2}, {0x1D716, 0x1D734, 2}, {0x1D736, 0x1D74E, 2},
    {0x1D750, 0x1D76E, 2}, {0x1D770, 0x1D788, 2}, {0x1D78A, 0x1D7A8, 2}, {0x1D7AA, 0x1D7C2, 2}, {0x1D7C4, 0x1D7CB, 2},
    {0x1DA00, 0x1DA36, 1}, {0x1DA3B, 0x1DA6C, 1}, {0x1DA75, 0x1DA75, 1}, {0x1DA84, 0x1DA84, 1}, {0x1DA9B, 0x1DA9F, 1},
    {0x1DAA1, 0x1DAAF, 1}, {0x1DF00, 0x1DF09, 2}, {0x1DF0B, 0x1DF1E, 2}, {0x1E000, 0x1E006, 1}, {0x1E008, 0x1E018, 1},
    {0x1E01B, 0x1E021, 1}, {0x1E023, 0x1E024, 1}, {0x1E026, 0x1E02A, 1}, {0x1E130, 0x1E13D, 1}, {0x1E2AE, 0x1E2AE, 1},
    {0x1E2EC, 0x1E2EF, 1}, {0x1E8D0, 0x1E8D6, 1}, {0x1E900, 0x1E943, 2}, {0x1E944, 0x1E94B, 1}, {0x1F130, 0x1F149, 2},
    {0x1F150, 0x1F169, 2}, {0x1F170, 0x1F189, 2}, {0x1F3FB, 0x1F3FF, 1}, {0xE0001, 0xE0001, 1}, {0xE0020, 0xE007F, 1},
    {0xE0100, 0xE01EF, 1},
};

constexpr char32_t kCapitalSigma = 0x3A3, kSmallSigma = 0x3C3, kFinalSigma = 0x3C2;

char32_t lower_simple(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  auto it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                             [](char32_t x, const LowerRun& r) { return x < r.first; });
  if (it == std::begin(kLowerRuns)) return c;
  const LowerRun& r = *--it;
  if (c > r.last || (c - r.first) % char32_t(r.step) != 0) return c;
  return char32_t(int32_t(c) + r.delta);
}

int case_kind(char32_t c) {
  auto it = std::upper_bound(std::begin(kCaseSpans), std::end(kCaseSpans), c,
                             [](char32_t x, const CaseSpan& s) { return x < s.first; });
  if (it == std::begin(kCaseSpans)) return 0;
  --it;
  return c <= it->last ? it->kind : 0;
}

// Python's Final_Sigma context: cased (case-ignorable)* SIGMA not followed by (case-ignorable)* cased.
bool is_final_sigma(const std::u32string& s, size_t i) {
  size_t j = i;
  while (j > 0 && case_kind(s[j - 1]) == 1) --j;
  if (j == 0 || case_kind(s[j - 1]) != 2) return false;
  j = i + 1;
  while (j < s.size() && case_kind(s[j]) == 1) ++j;
  return j == s.size() || case_kind(s[j]) != 2;
}

std::u32string lower_u32(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == kCapitalSigma) {
      out += is_final_sigma(s, i) ? kFinalSigma : kSmallSigma;
    } else if (c == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: full mapping is two code points
      out += U'i';
      out += char32_t(0x307);
    } else {
      out += lower_simple(c);
    }
  }
  return out;
}

// ---- UTF-8 <-> code points ----------------------------------------------------------------------
// Invalid bytes become U+DC80..U+DCFF and go back out unchanged (Python's surrogateescape), so
// each counts as one character and no input is rejected.

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i + k < n && p[i + k] >= lo && p[i + k] <= hi;
  };
  while (i < n) {
    unsigned b = p[i];
    if (b < 0x80) {
      out += char32_t(b), i += 1;
    } else if (b >= 0xC2 && b <= 0xDF && cont(1)) {
      out += char32_t((b & 0x1F) << 6 | (p[i + 1] & 0x3F)), i += 2;
    } else if (b >= 0xE0 && b <= 0xEF &&
               cont(1, b == 0xE0 ? 0xA0 : 0x80, b == 0xED ? 0x9F : 0xBF) && cont(2)) {
      out += char32_t((b & 0x0F) << 12 | (p[i + 1] & 0x3F) << 6 | (p[i + 2] & 0x3F)), i += 3;
    } else if (b >= 0xF0 && b <= 0xF4 &&
               cont(1, b == 0xF0 ? 0x90 : 0x80, b == 0xF4 ? 0x8F : 0xBF) && cont(2) && cont(3)) {
      out += char32_t((b & 0x07) << 18 | (p[i + 1] & 0x3F) << 12 | (p[i + 2] & 0x3F) << 6 | (p[i + 3] & 0x3F));
      i += 4;
    } else {
      out += char32_t(0xDC00 + b), i += 1;
    }
  }
  return out;
}

std::string encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xC0 | c >> 6), out += char(0x80 | (c & 0x3F));
    } else if (c >= 0xDC80 && c <= 0xDCFF) {
      out += char(c - 0xDC00);
    } else if (c < 0x10000) {
      out += char(0xE0 | c >> 12), out += char(0x80 | (c >> 6 & 0x3F)), out += char(0x80 | (c & 0x3F));
    } else {
      out += char(0xF0 | c >> 18), out += char(0x80 | (c >> 12 & 0x3F));
      out += char(0x80 | (c >> 6 & 0x3F)), out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Python's str.isspace(): what str.split() and str.rstrip() without arguments treat as space.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<std::u32string> split(const std::u32string& s) {
  std::vector<std::u32string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) words.emplace_back(s, i, j - i);
    i = j;
  }
  return words;
}

void rstrip(std::u32string& s) {
  while (!s.empty() && is_space(s.back())) s.pop_back();
}

// str.replace(): all non-overlapping occurrences, left to right.
void replace_all(std::u32string& s, std::u32string_view from, std::u32string_view to) {
  size_t pos = s.find(from);
  if (pos == std::u32string::npos) return;
  std::u32string out;
  size_t start = 0;
  for (; pos != std::u32string::npos; pos = s.find(from, start)) {
    out.append(s, start, pos - start);
    out += to;
    start = pos + from.size();
  }
  out.append(s, start, std::u32string::npos);
  s = std::move(out);
}

// ---- 13a -----------------------------------------------------------------------------------------
// sacreBLEU's Tokenizer13a + TokenizerRegexp. The four regexes match two characters at most and
// re.sub() scans left to right without overlap, so each is one pass over the string.

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

// [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation and space except ' , - .
bool is_13a_punct(char32_t c) {
  return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
         (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == 0x2F;
}

// Applies re.sub(pattern, repl) for a two-character pattern `first second`; emit writes the
// replacement of a match.
template <class First, class Second, class Emit>
std::u32string sub_pairs(const std::u32string& s, First first, Second second, Emit emit) {
  std::u32string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::u32string apply_13a(std::u32string s) {
  replace_all(s, U"<skipped>", U"");
  replace_all(s, U"-\n", U"");
  replace_all(s, U"\n", U" ");
  if (s.find(U'&') != std::u32string::npos) {
    replace_all(s, U"&quot;", U"\"");
    replace_all(s, U"&amp;", U"&");
    replace_all(s, U"&lt;", U"<");
    replace_all(s, U"&gt;", U">");
  }
  s = U" " + s + U" ";
  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
  std::u32string t;
  t.reserve(s.size() + s.size() / 2);
  for (char32_t c : s) {
    if (is_13a_punct(c)) {
      t += U' ', t += c, t += U' ';
    } else {
      t += c;
    }
  }
  auto period_comma = [](char32_t c) { return c == '.' || c == ','; };
  auto not_digit = [](char32_t c) { return !is_digit(c); };
  // ([^0-9])([\.,]) -> \1 \2
  t = sub_pairs(t, not_digit, period_comma, [](std::u32string& o, char32_t a, char32_t b) {
    o += a, o += U' ', o += b, o += U' ';
  });
  // ([\.,])([^0-9]) -> ' \1 \2'
  t = sub_pairs(t, period_comma, not_digit, [](std::u32string& o, char32_t a, char32_t b) {
    o += U' ', o += a, o += U' ', o += b;
  });
  // ([0-9])(-) -> \1 \2
  t = sub_pairs(t, is_digit, [](char32_t c) { return c == '-'; }, [](std::u32string& o, char32_t a, char32_t b) {
    o += a, o += U' ', o += b, o += U' ';
  });
  return t;
}

// ---- BLEU ----------------------------------------------------------------------------------------

// BLEU._preprocess_segment followed by the split of extract_all_word_ngrams.
std::vector<std::u32string> bleu_tokens(std::string_view text, const BleuOptions& o) {
  std::u32string s = decode(text);
  if (o.lowercase) s = lower_u32(s);
  rstrip(s);
  if (o.tokenize == "13a") return split(apply_13a(std::move(s)));
  if (o.tokenize == "char") {
    std::vector<std::u32string> chars;
    for (char32_t c : s)
      if (!is_space(c)) chars.emplace_back(1, c);
    return chars;
  }
  return split(s);
}

// N-gram counts per order (index n-1); keys are the tokens joined by ' ' (tokens hold no space).
using NgramCounts = std::vector<std::unordered_map<std::u32string, uint64_t>>;

NgramCounts word_ngrams(const std::vector<std::u32string>& tokens, int max_order) {
  NgramCounts counts(static_cast<size_t>(max_order));
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::u32string key;
    for (size_t n = 1; n <= size_t(max_order) && i + n <= tokens.size(); ++n) {
      if (n > 1) key += U' ';
      key += tokens[i + n - 1];
      ++counts[n - 1][key];
    }
  }
  return counts;
}

// BLEU._get_closest_ref_len: the closest length, ties to the shorter.
uint64_t closest_ref_len(uint64_t hyp_len, const std::vector<uint64_t>& ref_lens) {
  uint64_t best = 0, best_diff = 0;
  bool first = true;
  for (uint64_t len : ref_lens) {
    uint64_t diff = hyp_len > len ? hyp_len - len : len - hyp_len;
    if (first || diff < best_diff || (diff == best_diff && len < best)) best = len, best_diff = diff;
    first = false;
  }
  return best;
}

double smooth_default(const std::string& method) { return method == "floor" ? 0.1 : 1.0; }

std::string format_2f(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string count_mismatch(const char* metric, size_t got, size_t want, uint64_t segment) {
  return std::string(metric) + ": segment " + std::to_string(segment + 1) + " has " + std::to_string(got) +
         " references, expected " + std::to_string(want) + " (one per reference stream); give every segment the same " +
         "number of references";
}

// ---- chrF ----------------------------------------------------------------------------------------

constexpr double kChrfEps = 1e-16;

// CHRF._remove_punctuation: one leading or trailing string.punctuation character becomes a word.
std::vector<std::u32string> chrf_words(const std::u32string& line) {
  auto punct = [](char32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
  };
  std::vector<std::u32string> out;
  for (std::u32string& w : split(line)) {
    if (w.size() > 1 && punct(w.back())) {
      out.emplace_back(w, 0, w.size() - 1);
      out.emplace_back(1, w.back());
    } else if (w.size() > 1 && punct(w.front())) {
      out.emplace_back(1, w.front());
      out.emplace_back(w, 1, std::u32string::npos);
    } else {
      out.push_back(std::move(w));
    }
  }
  return out;
}

// Character n-grams of orders 1..char_order, then word n-grams of orders 1..word_order.
NgramCounts chrf_ngrams(std::string_view text, const ChrfOptions& o) {
  std::u32string line = decode(text);
  if (o.lowercase) line = lower_u32(line);
  NgramCounts counts(size_t(o.char_order + o.word_order));
  std::u32string chars;
  if (o.whitespace) {
    chars = line;
  } else {
    for (char32_t c : line)
      if (!is_space(c)) chars += c;
  }
  for (size_t n = 1; n <= size_t(o.char_order); ++n)
    for (size_t i = 0; i + n <= chars.size(); ++i) ++counts[n - 1][chars.substr(i, n)];
  if (o.word_order > 0) {
    NgramCounts words = word_ngrams(chrf_words(line), o.word_order);
    for (size_t n = 0; n < words.size(); ++n) counts[size_t(o.char_order) + n] = std::move(words[n]);
  }
  return counts;
}

// CHRF._compute_f_score over 3 counts (hyp, ref, match) per order, in sacreBLEU's operation order.
double chrf_f_score(const std::vector<uint64_t>& stats, const ChrfOptions& o) {
  const size_t order = size_t(o.char_order + o.word_order);
  const double factor = double(o.beta) * double(o.beta);
  double score = 0, avg_prec = 0, avg_rec = 0;
  int effective_order = 0;
  for (size_t i = 0; i < order; ++i) {
    uint64_t n_hyp = stats[3 * i], n_ref = stats[3 * i + 1], n_match = stats[3 * i + 2];
    double prec = n_hyp > 0 ? double(n_match) / double(n_hyp) : kChrfEps;
    double rec = n_ref > 0 ? double(n_match) / double(n_ref) : kChrfEps;
    double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : kChrfEps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (o.eps_smoothing) return 100 * score / double(order);
  if (effective_order == 0) {
    avg_prec = avg_rec = 0;
  } else {
    avg_prec /= effective_order;
    avg_rec /= effective_order;
  }
  if (avg_prec + avg_rec == 0) return 0;
  score = (1 + factor) * avg_prec * avg_rec;
  score /= factor * avg_prec + avg_rec;
  return 100 * score;
}

}  // namespace

// ---- public --------------------------------------------------------------------------------------

std::string lowercase(std::string_view text) { return encode(lower_u32(decode(text))); }

std::string tokenize_13a(std::string_view line) {
  std::string out;
  for (const std::u32string& t : split(apply_13a(decode(line)))) {
    if (!out.empty()) out += ' ';
    out += encode(t);
  }
  return out;
}

void validate(const BleuOptions& o) {
  if (o.tokenize != "13a" && o.tokenize != "none" && o.tokenize != "char")
    throw UsageError("BLEU tokenizer '" + o.tokenize + "' is not supported, expected 13a, none or char");
  bool takes_value = o.smooth == "floor" || o.smooth == "add-k";
  if (!takes_value && o.smooth != "exp" && o.smooth != "none")
    throw UsageError("BLEU smoothing method '" + o.smooth + "' is unknown, expected exp, floor, add-k or none");
  if (o.smooth_value && !takes_value)
    throw UsageError("BLEU smoothing value is set for method '" + o.smooth +
                     "', which takes none; only floor and add-k take a value");
  if (o.smooth_value && !(*o.smooth_value >= 0 && std::isfinite(*o.smooth_value)))
    throw UsageError("BLEU smoothing value " + std::to_string(*o.smooth_value) + " is out of range, expected >= 0");
  if (o.max_ngram_order < 1 || o.max_ngram_order > 100)
    throw UsageError("BLEU max n-gram order " + std::to_string(o.max_ngram_order) + " is out of range [1, 100]");
}

BleuResult compute_bleu(const BleuStats& s, const BleuOptions& o) {
  validate(o);
  const size_t max_order = size_t(o.max_ngram_order);
  if (s.counts.size() != max_order || s.totals.size() != max_order)
    throw UsageError("BLEU statistics have " + std::to_string(s.counts.size()) + " counts and " +
                     std::to_string(s.totals.size()) + " totals, expected " + std::to_string(max_order) +
                     " each (max n-gram order)");
  BleuResult r;
  r.counts = s.counts;
  r.totals = s.totals;
  r.sys_len = s.sys_len;
  r.ref_len = s.ref_len;
  r.ratio = s.ref_len ? double(s.sys_len) / double(s.ref_len) : 0.0;
  r.bp = 1.0;
  if (s.sys_len < s.ref_len) r.bp = s.sys_len > 0 ? std::exp(1 - double(s.ref_len) / double(s.sys_len)) : 0.0;
  r.precisions.assign(max_order, 0.0);
  // No match at any order: score 0 whatever the smoothing (sacreBLEU #141).
  if (std::all_of(s.counts.begin(), s.counts.end(), [](uint64_t c) { return c == 0; })) return r;

  const double k = o.smooth_value.value_or(smooth_default(o.smooth));
  double smooth_mteval = 1.0;
  size_t eff_order = max_order;
  for (size_t n = 1; n <= max_order; ++n) {
    double correct = double(s.counts[n - 1]), total = double(s.totals[n - 1]);
    if (o.smooth == "add-k" && n > 1) correct += k, total += k;
    if (total == 0) break;
    if (o.effective_order) eff_order = n;
    if (correct == 0) {
      if (o.smooth == "exp") {
        smooth_mteval *= 2;
        r.precisions[n - 1] = 100. / (smooth_mteval * total);
      } else if (o.smooth == "floor") {
        r.precisions[n - 1] = 100. * k / total;
      }
    } else {
      r.precisions[n - 1] = 100. * correct / total;
    }
  }
  // sacreBLEU's my_log: log(0) is floored to -9999999999, which drives the score to 0.
  double log_sum = 0;
  for (size_t n = 0; n < eff_order; ++n) log_sum += r.precisions[n] == 0.0 ? -9999999999.0 : std::log(r.precisions[n]);
  r.score = r.bp * std::exp(log_sum / double(eff_order));
  return r;
}

std::string bleu_signature(const BleuOptions& o, size_t n_refs) {
  validate(o);
  std::string smooth = o.smooth;
  if (o.smooth == "floor" || o.smooth == "add-k")
    smooth += "[" + format_2f(o.smooth_value.value_or(smooth_default(o.smooth))) + "]";
  return "nrefs:" + std::to_string(n_refs) + "|case:" + (o.lowercase ? "lc" : "mixed") +
         "|eff:" + (o.effective_order ? "yes" : "no") + "|tok:" + o.tokenize + "|smooth:" + smooth +
         "|version:lm-" LM_VERSION;
}

BleuScorer::BleuScorer(BleuOptions o, size_t n_refs) : opts_(std::move(o)), n_refs_(n_refs) {
  validate(opts_);
  if (n_refs_ == 0) throw UsageError("BLEU needs at least one reference stream, got 0");
  stats_.counts.assign(size_t(opts_.max_ngram_order), 0);
  stats_.totals.assign(size_t(opts_.max_ngram_order), 0);
}

void BleuScorer::add(std::string_view hyp, const std::vector<std::string_view>& refs) {
  if (refs.size() != n_refs_) throw UsageError(count_mismatch("BLEU", refs.size(), n_refs_, segments_));
  const int max_order = opts_.max_ngram_order;
  // Clip counts: for each n-gram, its largest count in any one reference.
  NgramCounts ref_max(static_cast<size_t>(max_order));
  std::vector<uint64_t> ref_lens;
  for (std::string_view ref : refs) {
    std::vector<std::u32string> tokens = bleu_tokens(ref, opts_);
    ref_lens.push_back(tokens.size());
    NgramCounts counts = word_ngrams(tokens, max_order);
    for (size_t n = 0; n < counts.size(); ++n)
      for (auto& [key, c] : counts[n]) {
        uint64_t& m = ref_max[n][key];
        m = std::max(m, c);
      }
  }
  std::vector<std::u32string> tokens = bleu_tokens(hyp, opts_);
  NgramCounts hyp_counts = word_ngrams(tokens, max_order);
  for (size_t n = 0; n < hyp_counts.size(); ++n)
    for (auto& [key, c] : hyp_counts[n]) {
      stats_.totals[n] += c;
      auto it = ref_max[n].find(key);
      if (it != ref_max[n].end()) stats_.counts[n] += std::min(c, it->second);
    }
  stats_.sys_len += tokens.size();
  stats_.ref_len += closest_ref_len(tokens.size(), ref_lens);
  if (hyp.size() >= 2 && hyp.substr(hyp.size() - 2) == " .") ++tokenized_period_;
  ++segments_;
}

BleuResult BleuScorer::result() const {
  BleuResult r = compute_bleu(stats_, opts_);
  r.looks_tokenized = !opts_.force && tokenized_period_ >= 100;
  return r;
}

void validate(const ChrfOptions& o) {
  auto check = [](const char* name, int v) {
    if (v < 0 || v > 100)
      throw UsageError(std::string("chrF ") + name + " " + std::to_string(v) + " is out of range [0, 100]");
  };
  check("character order", o.char_order);
  check("word order", o.word_order);
  check("beta", o.beta);
  if (o.char_order + o.word_order == 0)
    throw UsageError("chrF character order and word order are both 0; set at least one of them to 1 or more");
}

std::string chrf_signature(const ChrfOptions& o, size_t n_refs) {
  validate(o);
  return "nrefs:" + std::to_string(n_refs) + "|case:" + (o.lowercase ? "lc" : "mixed") +
         "|eff:" + (o.eps_smoothing ? "no" : "yes") + "|nc:" + std::to_string(o.char_order) +
         "|nw:" + std::to_string(o.word_order) + "|space:" + (o.whitespace ? "yes" : "no") + "|version:lm-" LM_VERSION;
}

ChrfScorer::ChrfScorer(ChrfOptions o, size_t n_refs) : opts_(o), n_refs_(n_refs) {
  validate(opts_);
  if (n_refs_ == 0) throw UsageError("chrF needs at least one reference stream, got 0");
  stats_.assign(3 * size_t(opts_.char_order + opts_.word_order), 0);
}

void ChrfScorer::add(std::string_view hyp, const std::vector<std::string_view>& refs) {
  if (refs.size() != n_refs_) throw UsageError(count_mismatch("chrF", refs.size(), n_refs_, segments_));
  NgramCounts hyp_counts = chrf_ngrams(hyp, opts_);
  std::vector<uint64_t> best, stats(stats_.size());
  double best_f = -1.0;
  for (std::string_view ref : refs) {
    NgramCounts ref_counts = chrf_ngrams(ref, opts_);
    for (size_t n = 0; n < hyp_counts.size(); ++n) {
      uint64_t n_hyp = 0, n_ref = 0, n_match = 0;
      for (auto& [key, c] : hyp_counts[n]) {
        n_hyp += c;
        auto it = ref_counts[n].find(key);
        if (it != ref_counts[n].end()) n_match += std::min(c, it->second);
      }
      for (auto& kv : ref_counts[n]) n_ref += kv.second;
      // sacreBLEU counts no hypothesis n-grams at an order the reference has none of.
      stats[3 * n] = ref_counts[n].empty() ? 0 : n_hyp;
      stats[3 * n + 1] = n_ref;
      stats[3 * n + 2] = n_match;
    }
    double f = chrf_f_score(stats, opts_);
    if (f > best_f) best_f = f, best = stats;
  }
  for (size_t i = 0; i < stats_.size(); ++i) stats_[i] += best[i];
  ++segments_;
}

ChrfResult ChrfScorer::result() const {
  ChrfResult r;
  r.score = chrf_f_score(stats_, opts_);
  r.name = "chrF" + std::to_string(opts_.beta) + std::string(size_t(opts_.word_order), '+');
  r.stats = stats_;
  return r;
}

}  // namespace lm::eval
