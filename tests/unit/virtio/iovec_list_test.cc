#include "virtio/iovec_list.h"

#include <gtest/gtest.h>

#include <utility>

namespace microvm {
namespace {

iovec buf(size_t i) { return iovec{reinterpret_cast<void*>(0x1000 * (i + 1)), i + 1}; }

void expect_contents(const IovecList& l, size_t n) {
  ASSERT_EQ(l.size(), n);
  ASSERT_EQ(l.span().size(), n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(l.span()[i].iov_base, buf(i).iov_base) << i;
    EXPECT_EQ(l.span()[i].iov_len, buf(i).iov_len) << i;
  }
}

TEST(IovecList, KeepsOrderInlineAndAfterSpillingToTheHeap) {
  for (size_t n : {size_t{0}, size_t{1}, IovecList::kInline, IovecList::kInline + 1, size_t{100}}) {
    IovecList l;
    for (size_t i = 0; i < n; ++i) l.push_back(buf(i));
    expect_contents(l, n);
  }
}

TEST(IovecList, MoveTakesEverythingAndLeavesTheSourceEmpty) {
  for (size_t n : {size_t{3}, size_t{20}}) {
    IovecList a;
    for (size_t i = 0; i < n; ++i) a.push_back(buf(i));
    IovecList b(std::move(a));
    expect_contents(b, n);
    EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the documented state
    IovecList c;
    c.push_back(buf(50));
    c = std::move(b);
    expect_contents(c, n);
    EXPECT_EQ(b.size(), 0u);  // NOLINT(bugprone-use-after-move)
    IovecList d = c;          // copies are independent
    c.clear();
    expect_contents(d, n);
  }
}

TEST(IovecList, ClearThenRefillAfterASpill) {
  IovecList l;
  for (size_t i = 0; i < 12; ++i) l.push_back(buf(i));
  l.clear();
  for (size_t i = 0; i < 5; ++i) l.push_back(buf(i));
  expect_contents(l, 5);
  for (size_t i = 5; i < 9; ++i) l.push_back(buf(i));
  expect_contents(l, 9);
}

TEST(IovecList, CopiesBetweenInlineAndSpilledLists) {
  IovecList small, big;
  for (size_t i = 0; i < 3; ++i) small.push_back(buf(i));
  for (size_t i = 0; i < 20; ++i) big.push_back(buf(i));
  IovecList x = big;
  x = small;  // a spilled list takes an inline one's entries
  expect_contents(x, 3);
  x = big;
  expect_contents(x, 20);
  IovecList y(small);
  y.push_back(buf(3));
  expect_contents(y, 4);
  expect_contents(small, 3);
}

}  // namespace
}  // namespace microvm
