"""Write tests/data/pii_labelled.jsonl from the hand-marked lines below.

Each line marks PII as `{TYPE:value}`; the script strips the marks and records character offsets,
so the offsets in the JSONL file are computed, never typed by hand. Rows carry "split": "tuning"
(the scrubber was developed against them) or "heldout" (written afterwards, never tuned on). Run:
    .venv/bin/python tests/data/make_pii_labelled.py
"""

import json
import re
from pathlib import Path

MARK = re.compile(r"\{([A-Z]+):([^{}]*)\}")
# The marked-up lines are data and may run past the line limit.
# ruff: noqa: E501

LINES = r"""
Hi, my name is {NAME:Sarah Johnson} and I can't log in to my account.
Please send the invoice to {EMAIL:sarah.johnson@gmail.com}, not my work address.
You can reach me on {PHONE:+1 (415) 555-0132} after {TIME:5pm}.
Call me back at {PHONE:(555) 123-4567} please, I'm at home all day.
My UK mobile is {PHONE:07911 123456} if the landline doesn't work.
Our office number is {PHONE:+44 20 7946 0958}, ask for {NAME:Priya}.
Ruf mich bitte unter {PHONE:0049 30 123456} an, danke!
Meine Nummer ist {PHONE:+49 30 12345678}, Gruß {NAME:Jürgen Müller}
Vous pouvez m'appeler au {PHONE:06 12 34 56 78}. Cordialement, {NAME:Amélie Dubois}
Mi teléfono es {PHONE:+34 612 34 56 78}, gracias. {NAME:Javier Fernández}
The card ending in 1111 was charged twice: {CARD:4111 1111 1111 1111}.
I paid with {CARD:5500-0000-0000-0004} and got no confirmation.
Card number {CARD:378282246310005}, expiry {CARD:09/27}.
Here is the full number: {CARD:6011111111111117} — please refund it.
The number on the back of my order is 4111 1111 1111 1112, is that the card?
Tracking number 9400 1000 0000 0000 0000 00 shows delivered but nothing arrived.
Refund to my IBAN {IBAN:DE89 3704 0044 0532 0130 00} please.
My bank details: {IBAN:GB82WEST12345698765432}, sort code is in there.
IBAN: {IBAN:FR14 2004 1010 0505 0001 3M02 606} (compte joint)
Is DE89 3704 0044 0532 0130 01 right? The app says it is invalid.
Please update my address to {ADDRESS:221B Baker Street}, London.
Ship it to {ADDRESS:1600 Pennsylvania Ave NW, Washington, DC 20500} by Friday.
Lieferadresse: {ADDRESS:Hauptstraße 5, 10115 Berlin}
Mon adresse est {ADDRESS:12 rue de la Paix, 75002 Paris}.
Envíelo a {ADDRESS:Calle Mayor 3, 28013 Madrid}, por favor.
The package went to {ADDRESS:742 Evergreen Terrace} instead of my new place.
I moved to {ADDRESS:45 Oak Road} last month, please update it.
Reset link: {URL:https://app.example.com/reset?token=9f8a7c6b5e4d3c2b1a0f} does not work.
I clicked {URL:https://shop.example.org/login?session=abc123XYZ789def456&user=42} and it logged me out.
The help page https://example.com/help says nothing about this.
See https://docs.example.com/billing/refunds for the policy you mentioned.
Your download link {URL:https://files.example.net/d/aZ3kP9qLm2XvB7nR4tYw8cJe} expired.
The webhook was sent to {URL:https://api.example.io/hook?sig=5d41402abc4b2a76b9719d911017c592} twice.
It happened on {DATE:2024-03-12} around {TIME:10:42}.
Log entry {DATE:2024-03-12T10:42:17Z} shows the failed payment.
I ordered on {DATE:12/03/2024} and it still hasn't shipped.
Bestellt am {DATE:3.12.2024} um {TIME:14:30} Uhr.
The delivery was promised for {DATE:March 3, 2024}.
I called on {DATE:3 March 2024} at {TIME:10:42 PM} and nobody answered.
Can you book the engineer for the {DATE:3rd of March}?
Le technicien passe à {TIME:14h30} demain.
Order ORD-2024-55321 is missing two items.
Ticket #48213 was closed without a reply.
After updating to v2.3.1 the app crashes on start.
I was charged 1,234.56 EUR instead of 123.45 EUR.
Product code SKU-88412-B and model XJ-9000 are the ones I want.
We usually do a sale in May, will there be one this year?
Will the new firmware fix the Bluetooth issue?
Is there a grace period for late payments?
Bill me monthly instead of yearly please.
Mark the ticket as resolved, thanks.
My June invoice is missing.
The Rose Gold model is out of stock again.
Summer sale prices were better, can you match them?
Hope you can help, this has been going on for weeks.
I emailed on Sunday and got no answer.
Thanks, {NAME:Michael}
Best, {NAME:Anna Schmidt}
Kind regards,
{NAME:Rajesh Kumar}
Dear Mrs. {NAME:O'Brien}, your refund has been processed.
Hi {NAME:Nguyen Van An}, thanks for waiting.
Hello {NAME:Wei Zhang}, your replacement ships today.
This is {NAME:Jean-Luc Picard} from the support team, how can I help?
I'm {NAME:Siobhan O'Connor}, I called yesterday about my router.
Mr. {NAME:Okafor} asked for a call back.
Please ask Dr. {NAME:Anjali Sharma} to confirm the prescription refill.
Sehr geehrte Frau {NAME:Becker}, vielen Dank für Ihre Nachricht.
Sehr geehrter Herr {NAME:Schneider}, Ihre Bestellung ist unterwegs.
Bonjour Mme {NAME:Lefèvre}, votre colis est arrivé.
Hola Sra. {NAME:García}, su pedido ha sido enviado.
My colleague {NAME:Thomas Weber} will pick it up.
I spoke with {NAME:Emily} on the phone and she promised a refund.
{NAME:Carlos Rodríguez} here, my router keeps rebooting.
Account holder: {NAME:Mary-Jane Watson}
The parcel was signed for by {NAME:Li Na}, but I don't know who that is.
{NAME:Tran Thi Mai} is my daughter, she can collect the order.
My husband {NAME:Arjun Patel} placed the order with his card.
Hey, it's {NAME:Tom} again, any update on my ticket?
Cheers,
{NAME:Ben}
Please forward this to {NAME:Sophie Martin} in billing.
I was helped by {NAME:Lukas} yesterday, he was great.
The driver, {NAME:Mohammed Al-Farsi}, left it at the door.
{NAME:Giulia Rossi} e {NAME:Marco Bianchi} hanno ordinato lo stesso articolo.
Grazie, {NAME:Francesca}
Met vriendelijke groet, {NAME:Pieter de Vries}
Atenciosamente, {NAME:João Silva}
Pozdrawiam, {NAME:Katarzyna Nowak}
Saygılarımla, {NAME:Mehmet Yılmaz}
Regards, {NAME:Deepika Iyer}
My email is {EMAIL:d.iyer+orders@outlook.in} and my phone is {PHONE:+91 98765 43210}.
Contact {NAME:Hiroshi Tanaka} at {EMAIL:h.tanaka@example.jp}.
Can you cc {EMAIL:accounts-payable@acme-corp.com} on the refund?
The promo code SPRING2024 didn't apply at checkout.
Error code E4012 appears when I pay with Apple Pay.
I have 3 devices on the plan and want to add a 4th.
The router model is TP-Link Archer C7 v5.
It costs $49.99 per month, which is more than advertised.
Firmware 10.4.2 broke the Wi-Fi on my laptop.
My account number is {ID:00123-45} and I'd like to close it.
My order number is 123456789 and it's late.
The screen is 1920x1080 but it shows 1280x720.
I bought 2 x 500ml bottles and 1 x 1L bottle.
Room 404 at the hotel had no Wi-Fi.
Flight LH1234 was delayed, I need to change my booking.
The price went from 12.99 to 14.99 overnight.
Version 2.10.3 still has the same bug as 2.9.8.
Can I pay in 3 instalments of 33.33?
We have 250 employees and need 50 more licences.
I'm on the Premium plan since 2019.
Paris was lovely but the hotel lost my booking.
My name is {NAME:Fatima Zahra}, I ordered the blue one.
My name is {NAME:Aoife Murphy} and I'd like a refund.
Mein Name ist {NAME:Klaus-Dieter Hoffmann}, ich habe eine Frage zur Rechnung.
Je m'appelle {NAME:Céline Moreau} et j'ai un problème avec ma commande.
Me llamo {NAME:Alejandro Torres}, tengo un problema con el envío.
Write to me at {EMAIL:celine.moreau@laposte.net} or call {PHONE:01 23 45 67 89}.
His number is {PHONE:+61 2 9876 5432}, he's in Sydney.
Phone: {PHONE:+55 11 91234-5678}
Tel. {PHONE:+39 06 1234 5678}
My number changed to {PHONE:+31 6 12345678}.
Hi team, {NAME:Laura Chen} here. Card {CARD:4012 8888 8888 1881} was declined.
The charge of 89.00 EUR on {DATE:14/02/2024} was not mine.
My IBAN is {IBAN:NL91ABNA0417164300} and my name is {NAME:Sanne Jansen}.
Please use {IBAN:ES91 2100 0418 4502 0005 1332} for the refund.
{IBAN:IT60X0542811101000000123456} is my Italian account.
Can you confirm the appointment at {TIME:9:15 am} on {DATE:April 22, 2024}?
My last payment was on {DATE:2023-11-30} and it bounced.
The outage started at {TIME:08:05} and lasted until {TIME:11:40}.
Delivery window is {TIME:2pm} to {TIME:6pm}.
On {DATE:5 May 2024} I returned the item.
The courier came on {DATE:May 5th} but I wasn't home.
I'll be away from {DATE:1 June} to {DATE:15 June}.
Send it to {ADDRESS:10 Downing Street, London SW1A 2AA}.
New address: {ADDRESS:350 Fifth Avenue, New York, NY 10118}
Bitte an die {ADDRESS:Königsallee 27, 40212 Düsseldorf} schicken.
Adresse de livraison : {ADDRESS:8 avenue des Champs-Élysées, 75008 Paris}
Mi dirección es {ADDRESS:Avenida de la Constitución 12, 41004 Sevilla}.
Indirizzo: {ADDRESS:Via Roma 10, 00184 Roma}
Mijn adres is {ADDRESS:Keizersgracht 123, 1015 CJ Amsterdam}.
I live at {ADDRESS:77 Massachusetts Ave, Cambridge, MA 02139} and the box never came.
The cable is 2 m long and the adapter is 5 V.
Is the 5G version available in Grace Bay?
Can I speak to a manager? This is ridiculous.
The Sunday delivery slot is always full.
The invoice says Hope Street Pharmacy but I never shopped there.
Reference number RF18539007547034 came with the letter.
My customer ID is {ID:CUST-000912} if that helps.
The serial number is SN 4501-2233-8876.
I need 1000 units by Q3.
Order #77123 and #77124 were merged by mistake.
The total was 1 234,56 € but I was charged twice.
Dear Mr. {NAME:Henderson}, we have received your complaint.
Hi {NAME:Ananya},
thanks for your patience. {NAME:Rohan} from billing will call you at {PHONE:+91 22 2345 6789}.
Kind regards, {NAME:Olga Ivanova}
Best regards,
{NAME:Kevin O'Neill}
Customer {NAME:Ahmed Hassan} reports the same issue as {NAME:Yuki Sato}.
Thanks {NAME:Ines}, that fixed it!
Thank you {NAME:Mateo}, I got the refund.
My wife {NAME:Priyanka} will call you tomorrow.
{NAME:Đặng Minh Châu} là tên tôi, tôi cần hỗ trợ.
Please address the letter to {NAME:Zhou Xiaoming}.
{NAME:Elena Popescu} and I share the account.
My sister {NAME:Chloé} uses the same e-mail: {EMAIL:chloe.b@free.fr}.
I'm writing on behalf of my father, {NAME:Stanisław Kowalski}.
The technician, {NAME:Dmitri}, never showed up.
Ask for {NAME:Will Turner} at reception.
{NAME:Grace Kim} here, my card {CARD:5105 1051 0510 5100} expired.
{NAME:Mark Evans} from IT set up the account.
Sign the form and email it to {EMAIL:support@preflab.example}.
Login code from the SMS: 482913, please don't share it.
My password reset link {URL:https://id.example.com/recover/8f14e45fceea167a5a36dedd4bea2543} keeps failing.
The link {URL:https://pay.example.com/checkout?order=5521&key=sk_live_51HxYzAbCdEf} shows an error.
Go to https://example.com/account/settings and choose Delete.
Our status page https://status.example.com was green all day.
Visit www.example.com/faq for answers.
I got an email from {EMAIL:no-reply@notifications.bank-example.com} asking for my PIN.
Can you resend the code to {PHONE:+1 212 555 0199}?
Landline {PHONE:020 7946 0018}, mobile {PHONE:07700 900123}.
Meine Handynummer: {PHONE:0151 23456789}
I'm sorry but this is the third time I'm writing.
I'm happy with the replacement, thanks for the quick help.
This is the last time I order from you.
Hello Support, my router shows a red light.
Dear Sir or Madam, I'd like to cancel my subscription.
Hi there, the app keeps crashing on Android 14.
Thanks, Support Team
Best, The Billing Team
The aspect ratio is 16:9 and the refresh rate 60 Hz.
The meeting in Room 10:B was cancelled.
Order placed {DATE:2024-01-05 09:30}, delivered {DATE:2024-01-09}.
Ticket opened {DATE:Jan 15, 2024} at {TIME:16:45}.
Am {DATE:15. März 2024} habe ich angerufen.
Le {DATE:3 mars 2024} j'ai reçu un colis vide.
El {DATE:12 de marzo de 2024} hice el pedido.
hi, my name is {NAME:john smith} and my parcel never came
this is {NAME:maria} from the billing team, following up
i'm {NAME:sarah}, the order was for my mum
thanks {NAME:chris}, that fixed it
hey it's {NAME:alex} again, still no refund
name: {NAME:peter novak}
me llamo {NAME:lucía} y no puedo entrar
you can call me at {PHONE:555-1234} after lunch
my number is {PHONE:555 0199}, text me when it ships
phone: {PHONE:867-5309}
ring me on {PHONE:020 7946 0018} tomorrow
order number 555-1234 is missing a strap
tracking 123-4567 hasn't moved for a week
i'm sorry to bother you again
this is ridiculous, third time asking
i'm happy with the tent but the poles are bent
hi there, quick question about sizes
thanks again for the help
i'm still waiting on my refund
this is my second order this month
i am writing about the jacket
hello team, the zip broke
i'm done with this, cancel it
the item code is 334-2211 on the label
room 12, building 3, call ext. 4412 if needed
The card is {CARD:5555 5555 5555 4444}, exp {CARD:04/27}, CVV {CARD:123}.
Expiry date: {CARD:11/2029} and the security code is {CARD:4821}.
Gültig bis {CARD:08/26}, Prüfnummer {CARD:317}.
My SSN is {ID:536-22-8726}, please update the tax form.
social security number {ID:536228726} for the W-9
The form shows 078-05-1120, is that the example number?
my NI number is {ID:QQ 12 34 56 C}
National Insurance: {ID:AB123456C}
passport number {ID:X1234567}, expires {DATE:2031-05-01}
Driver's licence number {ID:MORGA753116SM9IJ} was rejected at the counter.
Steuer-ID {ID:12 345 678 901} bitte im Konto speichern.
DNI {ID:12345678Z}, a nombre de {NAME:Lucía Romero}
Bank account number {ID:31926819}, sort code {ID:60-16-13}.
acct {ID:55120987} shows a double charge
Member number {ID:M-2231907} on my loyalty card.
Login fails from {IP:203.0.113.42} but works from home.
Our office IP is {IP:198.51.100.7}, can you whitelist it?
IPv6 {IP:2001:db8:85a3::8a2e:370:7334} is blocked by your firewall.
Router at {IP:192.168.1.1} keeps dropping the connection.
After the update to 1.2.3.4 the app crashes.
Firmware 10.0.0.1 is the latest we have.
The log says {TIME:10:42:17} for the failed payment.
my account is 3 years old
the security code on the gift card is scratched off
the customer id field is empty in the app
we use a 4-digit code 1234 for the door, not related
Expires in 3 days, can I renew early?
code 404 again when I open the page
The exp 3/4 scale on the chart is confusing.
"""

# Written after the scrubber was tuned on the lines above and never tuned on: a held-out check.
HELD_OUT = r"""
Hi, I'm {NAME:Rebecca Thornton} and my parcel never arrived.
Please call {NAME:Oliver} on {PHONE:+44 7700 900456} before noon.
My details: {NAME:Gabriel Moreau}, {EMAIL:gabriel.moreau@orange.fr}, {PHONE:+33 6 98 76 54 32}.
The second card {CARD:4242 4242 4242 4242} was also charged on {DATE:2024-02-29}.
Refund please to {IBAN:BE68 5390 0754 7034}, account of {NAME:Lotte Peeters}.
Thanks a lot,
{NAME:Hannah Fischer}
Dear {NAME:Vikram Singh}, the technician will arrive at {TIME:11:30} tomorrow.
I live at {ADDRESS:19 Elm Street}, the old address was wrong.
Neue Anschrift: {ADDRESS:Lindenstraße 42, 50674 Köln}
Our order ORD-2023-99102 was split into two parcels, tracking 1Z999AA10123456784.
Software version 4.12.0 crashed twice on Monday.
The 14.99 plan was renamed Premium Plus last May.
Can {NAME:Sofía Martínez} collect the parcel for me?
Message from {NAME:Pham Quoc Bao}: the modem is blinking orange.
{NAME:Liam O'Sullivan} here, I can't reset my password.
Account owner: {NAME:Nadia Benali}, phone {PHONE:0612345678}.
The promised callback on {DATE:April 9, 2024} never happened.
Please don't send anything to {ADDRESS:5 rue du Moulin, 69002 Lyon} anymore.
My reset link {URL:https://secure.example.com/pw?reset=Zx81kQp0aLm3} expired in minutes.
The manual at https://example.com/manuals/router-x200 is outdated.
Invoice INV-55812 lists 3 items but I received 2.
Kindly connect me to Mr. {NAME:Raghavan}'s team.
{NAME:Chen Jing} and {NAME:Zhang Wei} both work in our office and use the account.
Hello {NAME:Matteo Ricci}, thanks for your message.
Best wishes,
{NAME:Ingrid Svensson}
I paid {CARD:3714 496353 98431} on the Amex.
It's {NAME:Aisha}, I called earlier about the broken screen.
The Summer Collection price dropped by 20%.
June and July are our busiest months.
hello, this is {NAME:daniel} again about ticket 4471
my name is {NAME:emma wilson}, order placed last week
thanks {NAME:olivia}!! you're a star
i am {NAME:thomas} and i bought the blue backpack
hey, {NAME:sophie} here, can you check my refund
je m'appelle {NAME:camille} et mon colis est perdu
ich heiße {NAME:lukas} und mein paket ist kaputt
cheers, {NAME:liam}
please call me on {PHONE:555 8821} before 6
text me at {PHONE:555-7742} when it's ready
my cell is {PHONE:392-1180}
reach me at {PHONE:555.3020} thanks
my work number is {PHONE:555-9090}
i'm not happy with the delivery at all
this is the second time the zip broke
i'm looking for a bigger size
hi again, any update?
thanks so much for the quick reply
i am extremely disappointed
the code 555-1234 didn't work at checkout
invoice 220-1844 was charged twice
it's been two weeks now
hello? is anyone there
i'm an existing customer
this is urgent please
size chart says 170-1800 mm which is confusing
call center said 3 to 5 days
Card {CARD:4000 0566 5566 5556}, valid thru {CARD:10/28}, CVC {CARD:912}
my ssn: {ID:219-45-1234} (needed for the credit check?)
My social security number is {ID:412 55 9087}.
NI number {ID:JG 10 37 29 A} is on my payslip.
Personalausweisnummer {ID:L01X00T47}, bitte löschen.
codice fiscale {ID:RSSMRA85T10A562S}
Please close account no. {ID:44017782}, routing number {ID:021000021}.
my customer number is {ID:204-55871}
The VPN gives me {IP:172.16.254.1} and then times out.
Blocked IP: {IP:2001:db8::1}
Version 2.10.0.4 fixed nothing.
It happened at {TIME:23:15:02} and again at {TIME:23:16}.
the CVV field won't accept letters
account settings page shows an error
my ID card photo is blurry, can I resend it?
use code SAVE20 at checkout
"""


def parse(line: str) -> dict:
    """Strip the marks from one line and return its text and spans."""
    text, spans, pos = [], [], 0
    offset = 0
    for m in MARK.finditer(line):
        text.append(line[pos : m.start()])
        offset += m.start() - pos
        kind, value = m.group(1), m.group(2)
        spans.append({"type": kind, "start": offset, "end": offset + len(value)})
        text.append(value)
        offset += len(value)
        pos = m.end()
    text.append(line[pos:])
    out = "".join(text)
    for s in spans:
        assert out[s["start"] : s["end"]].strip() == out[s["start"] : s["end"]], line
    return {"text": out, "spans": spans}


def records(lines: str = LINES) -> list[dict]:
    """Return the labelled records; a sign-off line ending in a comma joins the next one."""
    rows: list[str] = []
    buffer = ""
    for raw in lines.strip("\n").split("\n"):
        buffer = f"{buffer}\n{raw}" if buffer else raw
        if raw.rstrip().endswith(",") and raw.strip() in SIGNOFF_OPENERS:
            continue
        rows.append(buffer)
        buffer = ""
    if buffer:
        rows.append(buffer)
    return [parse(r) for r in rows]


SIGNOFF_OPENERS = {
    "Kind regards,", "Cheers,", "Best regards,", "Hi {NAME:Ananya},", "Thanks a lot,",
    "Best wishes,",
}  # fmt: skip


def main() -> None:
    out = Path(__file__).with_name("pii_labelled.jsonl")
    rows = [{**r, "split": "tuning"} for r in records(LINES)]
    rows += [{**r, "split": "heldout"} for r in records(HELD_OUT)]
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {out}")


if __name__ == "__main__":
    main()
