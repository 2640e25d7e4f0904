# SPDX-License-Identifier: MIT
"""
corpus.py - the documents the integration tests ingest, written by each test into its own temp
dir: a small support-desk corpus (markdown with headings and front matter, a .txt file) whose
sections use distinct words, so even a lexical embedder ranks the right section first, and
generators of many small files for the ingest, concurrency and durability tests.
"""
import os
import random

from harness import write

REFUNDS = """---
title: Refund policy
tags: [billing, refunds]
owner: finance
---
# Refund policy

Customers can request a full refund within 30 days of purchase. To start a refund, open the order
in your account and choose "Request refund". Refunds are paid to the original payment method
within five to ten business days.

## Eligibility

Items must be unused and in their original packaging. Digital downloads are eligible only when
they have not been downloaded yet. Gift cards and clearance items are never eligible.

## Exceptions

After 30 days you can still get your money back in some cases: when the product arrived damaged,
when it is defective, or when we sent the wrong item. Contact support with your order number and
a photo, and we will give your money back to your card even after the 30 day window has passed.
"""

SHIPPING = """---
title: Shipping FAQ
tags: [shipping]
---
# Shipping FAQ

## Domestic delivery

Standard domestic delivery takes three to five business days. Express delivery arrives the next
business day when the parcel is ordered before noon.

## International shipping

International orders travel by air mail and usually arrive within seven to twenty-one days.
Customs duties and import taxes are charged by the destination country and are paid by the
recipient when the parcel clears customs.

## Tracking a parcel

Every parcel gets a tracking number by email as soon as the courier collects it. Follow the link
in the email to see where the parcel is.
"""

INVOICES = """---
title: Invoices
tags: [billing, vip]
owner: accounting
---
# Invoices

## Downloading invoices

Invoices are available as PDF files in the Billing section of your account. Each invoice lists the
invoice number, the date and the VAT amount.

## Company details and VAT numbers

To add a company name or a VAT identification number to future invoices, edit the billing profile
before placing the order. Invoices that were already issued cannot be changed.
"""

PASSWORDS = """# Account security

## Resetting your password

Use the "Forgot password" link on the sign-in page. We email a reset link that expires after one
hour. Choose a password of at least twelve characters.

## Two-factor authentication

Turn on two-factor authentication in the security settings and scan the QR code with an
authenticator app. Keep the recovery codes somewhere safe.
"""

README = """# Getting started

Welcome to the support knowledge base. Search for a topic or browse the folders.

## Opening hours

Our support desk is open Monday to Friday from nine in the morning to five in the afternoon,
Central European Time, except on public holidays.
"""

OFFICE_TXT = """Office notes

The office coffee machine is descaled every Friday afternoon by the facilities team. Please do not
use it while the descaling light is blinking.

Bicycles go in the basement storage room; the door code changes on the first day of every month.
"""

# relative path -> content; files without front matter are listed in PLAIN
FILES = {
    "business/refunds.md": REFUNDS,
    "shipping/faq.md": SHIPPING,
    "billing/invoices.md": INVOICES,
    "account/passwords.md": PASSWORDS,
    "README.md": README,
    "notes/office.txt": OFFICE_TXT,
}
PLAIN = ("README.md", "notes/office.txt", "account/passwords.md")

REFUND_QUESTION = "can I get my money back after 30 days"


def write_corpus(root):
    """Writes the support corpus under root. Returns: number of files."""
    for rel, text in FILES.items():
        write(os.path.join(root, rel), text)
    return len(FILES)


WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu amber basalt cedar dune ember fjord granite harbor iris jasper kelp lagoon "
         "meadow nectar orchid pebble quartz reef saffron tundra umber violet willow").split()


def unique_word(i):
    """A word that appears only in generated file i ("zqx0007kw")."""
    return "zqx%04dkw" % i


def write_generated(root, count, paragraphs=3, seed=7, prefix="gen"):
    """Writes count markdown files root/<prefix>/dNN/fileNNNN.md, each with a heading, a few
    paragraphs of pseudo-random words and its unique word. Returns: list of relative paths."""
    rng = random.Random(seed)
    rels = []
    for i in range(count):
        rel = "%s/d%02d/file%04d.md" % (prefix, i % 10, i)
        body = ["# Generated document %d" % i, ""]
        for p in range(paragraphs):
            words = [rng.choice(WORDS) for _ in range(40)]
            if p == 0:
                words.insert(5, unique_word(i))
            body.append(" ".join(words) + ".")
            body.append("")
        write(os.path.join(root, rel), "\n".join(body))
        rels.append(rel)
    return rels
