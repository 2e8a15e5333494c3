"""Case threads in the browser: a new thread about a patient found by INS, messages, a PDF
with its preview, a second clinician who sees it all arrive live, and a message written offline
that waits encrypted in the outbox and is delivered exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from hdsapp.config import Settings
from hdsapp.core.db import Database
from tests.patients.data import fr_patient, new_ins
from tests.web.a11y import assert_accessible
from tests.web.conftest import Guard, LiveServer, NewContext, Shoot
from tests.web.people import People, Person, sign_in
from tests.web.test_browser_inbox import bearer

pytestmark = pytest.mark.browser

# A one-page PDF, small and valid enough for the browser's viewer.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 44>>stream\nBT /F1 18 Tf 72 760 Td (Compte rendu) Tj ET\n"
    b"endstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

# Every record of every IndexedDB database of the page, as text: strings as they are, bytes
# decoded (so a plaintext would show), keys as what they say of themselves.
DUMP_INDEXEDDB = """
async () => {
  const text = (value) => {
    if (value instanceof CryptoKey) {
      return `CryptoKey(${value.algorithm.name}, extractable=${value.extractable})`;
    }
    if (value instanceof ArrayBuffer) return new TextDecoder("utf-8").decode(value);
    if (ArrayBuffer.isView(value)) return new TextDecoder("utf-8").decode(value);
    if (value && typeof value === "object") {
      return Object.entries(value).map(([k, v]) => `${k}=${text(v)}`).join(" ");
    }
    return String(value);
  };
  const ask = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const out = [];
  for (const info of await indexedDB.databases()) {
    const db = await ask(indexedDB.open(info.name));
    for (const name of db.objectStoreNames) {
      for (const record of await ask(db.transaction(name).objectStore(name).getAll())) {
        out.push(`${info.name}/${name}: ${text(record)}`);
      }
    }
    db.close();
  }
  return out;
}
"""


class Care:
    """A care group with a doctor and a nurse, a patient with a test INS (through the API)."""

    def __init__(self, people: People, database: Database, settings: Settings, url: str) -> None:
        coordinator = people.add("paul.durand@example.org", "Dr Paul Durand")
        self.doctor = people.add("claire.martin@example.org", "Dr Claire Martin")
        self.nurse = people.add("marc.petit@example.org", "Marc Petit", profession="60")
        self.gid = people.group("MSP des Tilleuls", coordinator)
        people.join(self.gid, self.doctor, "clinician")
        people.join(self.gid, self.nurse, "clinician")
        self.ins = new_ins()
        self.url = url
        self.headers = {p.email: bearer(database, settings, p) for p in (self.doctor, self.nurse)}
        patient = self.api(
            self.doctor,
            "POST",
            f"/api/v1/groups/{self.gid}/patients",
            json=fr_patient(ins=self.ins),
        )
        self.pid = patient["id"]

    def api(self, who: Person, method: str, path: str, **kwargs: Any) -> Any:
        with httpx.Client(base_url=self.url, headers=self.headers[who.email]) as client:
            answer = client.request(method, path, **kwargs)
            assert answer.is_success, answer.text
            return answer.json()


def signed_in(contexts: NewContext, person: Person) -> Page:
    page = contexts().new_page()
    sign_in(page, person)
    return page


def test_new_thread_messages_a_pdf_and_a_colleague_following_live(
    people: People,
    database: Database,
    settings: Settings,
    live_server: LiveServer,
    contexts: NewContext,
    shoot: Shoot,
) -> None:
    care = Care(people, database, settings, live_server.url)
    # Marc, the nurse, has his inbox open on his own device.
    nurse = signed_in(contexts, care.nurse)
    expect(nurse.locator("#thread-list li")).to_have_count(0)

    # Dr Martin starts a thread about her patient, found by INS.
    doctor = signed_in(contexts, care.doctor)
    doctor.get_by_role("link", name="Nouveau fil").click()
    expect(doctor.get_by_role("heading", level=1)).to_have_text("Nouveau fil de discussion")
    search = doctor.locator("#patient-search")
    search.get_by_label("INS", exact=True).fill(care.ins)
    search.get_by_label("Type d'INS").select_option("test")
    search.get_by_role("button", name="Rechercher").click()
    doctor.get_by_role("button", name="Choisir Julie MARTIN").click()
    expect(doctor.locator("#chosen-patient")).to_contain_text("Julie MARTIN")
    doctor.get_by_label("Objet").fill("Retour d'hospitalisation")
    doctor.get_by_label("Urgente").check()
    doctor.get_by_label("Marc Petit").check()
    assert_accessible(doctor)
    shoot(doctor, "newthread")
    doctor.get_by_role("button", name="Ouvrir le fil").click()
    expect(doctor.get_by_role("heading", level=1)).to_have_text("Retour d'hospitalisation")
    assert "#/threads/" in doctor.url
    tid = doctor.url.rsplit("/", 1)[-1]

    # The new thread appears in Marc's inbox without a reload.
    row = nurse.locator(f'#thread-list li[data-thread-id="{tid}"]')
    expect(row).to_contain_text("Retour d'hospitalisation", timeout=15_000)
    expect(row).to_contain_text("Urgent")

    # A message, then a PDF with its preview.
    doctor.get_by_label("Votre message").fill("Sortie hier, pansement à refaire demain.")
    doctor.get_by_role("button", name="Envoyer", exact=True).click()
    mine = doctor.locator("#messages li").last
    expect(mine).to_contain_text("Sortie hier, pansement à refaire demain.")
    expect(mine).to_contain_text("Dr Claire Martin")
    expect(mine).to_contain_text("Médecin")
    expect(row.get_by_label("1 message non lu")).to_have_text("1", timeout=15_000)

    doctor.locator("#attach summary").click()
    doctor.get_by_label("Document", exact=True).set_input_files(
        {"name": "compte-rendu.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    doctor.get_by_label("Type de document").select_option("report")
    doctor.get_by_label("Légende (facultatif)").fill("Compte rendu de sortie")
    doctor.get_by_role("button", name="Envoyer le document").click()
    attached = doctor.locator("#messages li").last
    expect(attached).to_contain_text("compte-rendu.pdf")
    expect(attached).to_contain_text("Compte rendu de sortie")
    attached.get_by_role("button", name="Aperçu de compte-rendu.pdf").click()
    expect(attached.locator("iframe.attachment-pdf")).to_be_visible()
    expect(attached.get_by_role("link", name="Télécharger compte-rendu.pdf")).to_have_attribute(
        "href",
        f"/api/v1/attachments/{attached.locator('[data-attachment-id]').get_attribute('data-attachment-id')}",
    )
    expect(row.get_by_label("2 messages non lus")).to_have_text("2", timeout=15_000)

    # Marc opens the thread: everything is there, and the next message arrives live.
    row.get_by_role("link", name="Retour d'hospitalisation").click()
    expect(nurse.get_by_role("heading", level=1)).to_have_text("Retour d'hospitalisation")
    expect(nurse.locator("#messages li")).to_have_count(2)
    expect(nurse.locator("#messages li").last).to_contain_text("compte-rendu.pdf")
    doctor.get_by_label("Votre message").fill("Pouvez-vous passer vers 9 h ?")
    doctor.get_by_role("button", name="Envoyer", exact=True).click()
    expect(nurse.locator("#messages li")).to_have_count(3, timeout=15_000)
    expect(nurse.locator("#messages li").last).to_contain_text("Pouvez-vous passer vers 9 h ?")
    assert_accessible(nurse)
    shoot(nurse, "thread")
    shoot(doctor, "thread-attachment", at="iframe.attachment-pdf")

    # Marc's position is read: the inbox says nothing is unread.
    state = care.api(care.nurse, "GET", f"/api/v1/threads/{tid}")
    assert state["unread"] == 0, state
    # Nothing clinical in the browsers' databases.
    for page in (doctor, nurse):
        records = "\n".join(page.evaluate(DUMP_INDEXEDDB))
        for text in ("Sortie hier", "Pouvez-vous", "Compte rendu", "Julie", "MARTIN", care.ins):
            assert text not in records


def test_a_message_written_offline_waits_encrypted_and_is_delivered_once(
    people: People,
    database: Database,
    settings: Settings,
    live_server: LiveServer,
    context: BrowserContext,
    guard: Guard,
) -> None:
    care = Care(people, database, settings, live_server.url)
    thread = care.api(
        care.doctor,
        "POST",
        f"/api/v1/groups/{care.gid}/threads",
        json={
            "patient": f"Patient/{care.pid}",
            "title": "Plaie du talon",
            "participants": [str(care.nurse.user_id)],
            "priority": "routine",
        },
    )
    page = context.new_page()
    sign_in(page, care.doctor)
    page.goto(f"/#/threads/{thread['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Plaie du talon")

    # Offline, the post fails on the network: the browser says so in the console.
    guard.expect_console_error(r"ERR_INTERNET_DISCONNECTED")
    context.set_offline(True)
    text = f"Plaie propre, pas de signe d'infection ({uuid.uuid4().hex[:6]})."
    page.get_by_label("Votre message").fill(text)
    page.get_by_role("button", name="Envoyer", exact=True).click()
    pending = page.locator("#messages li.is-pending")
    expect(pending).to_contain_text(text)
    expect(pending).to_contain_text("En attente")
    records = page.evaluate(DUMP_INDEXEDDB)
    waiting = [r for r in records if r.startswith("hds-outbox/messages")]
    assert len(waiting) == 1, records
    assert text not in "\n".join(records)
    assert "Plaie" not in "\n".join(records)
    assert any("extractable=false" in r for r in records if r.startswith("hds-outbox/keys"))

    # Back online: sent with its client id, shown as sent, posted once.
    context.set_offline(False)
    expect(page.locator("#messages li.is-pending")).to_have_count(0, timeout=15_000)
    sent = page.locator("#messages li").last
    expect(sent).to_contain_text(text)
    expect(sent).not_to_contain_text("En attente")
    page.wait_for_timeout(1500)
    messages = care.api(care.doctor, "GET", f"/api/v1/threads/{thread['id']}/messages")["items"]
    assert [m["body"] for m in messages] == [text]
    assert not [r for r in page.evaluate(DUMP_INDEXEDDB) if r.startswith("hds-outbox/messages")]

    # Logout deletes the outbox, its key with it.
    page.locator("#logout-button").click()
    # The wipe and the reload take a moment on a busy machine.
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion", timeout=20_000)
    names = page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)")
    assert "hds-outbox" not in names


def test_tasks_and_break_the_glass(
    people: People,
    database: Database,
    settings: Settings,
    live_server: LiveServer,
    contexts: NewContext,
    guard: Guard,
) -> None:
    care = Care(people, database, settings, live_server.url)
    pharmacist = people.add("lea.roux@example.org", "Léa Roux", profession="21")
    people.join(care.gid, pharmacist, "clinician")
    thread = care.api(
        care.doctor,
        "POST",
        f"/api/v1/groups/{care.gid}/threads",
        json={
            "patient": f"Patient/{care.pid}",
            "title": "Anticoagulant",
            "participants": [str(care.nurse.user_id)],
            "priority": "urgent",
        },
    )
    tid = thread["id"]

    # A task for Marc, due tomorrow, then accepted.
    doctor = signed_in(contexts, care.doctor)
    doctor.goto(f"/#/threads/{tid}")
    expect(doctor.get_by_role("heading", level=1)).to_have_text("Anticoagulant")
    doctor.get_by_text("Nouvelle tâche").click()
    doctor.get_by_label("Tâche", exact=True).fill("Contrôler l'INR jeudi")
    doctor.get_by_label("Confiée à").select_option(label="Marc Petit")
    doctor.get_by_label("Échéance").fill("2030-01-10")
    doctor.get_by_role("button", name="Créer la tâche").click()
    task = doctor.locator("#task-list li")
    expect(task).to_contain_text("Contrôler l'INR jeudi")
    expect(task).to_contain_text("Marc Petit")
    expect(task).to_contain_text("Demandée")
    task.get_by_label("Nouveau statut de la tâche « Contrôler l'INR jeudi »").select_option(
        "accepted"
    )
    task.get_by_role("button", name="Appliquer").click()
    expect(doctor.locator("#task-list li")).to_contain_text("Acceptée")
    expect(doctor.locator("#participant-list li")).to_have_count(2)

    # Léa, a clinician of the group outside the thread, breaks the glass.
    guard.expect_http_error(f"/api/v1/threads/{tid}", 403)  # the refusal the app answers
    pharmacy = signed_in(contexts, pharmacist)
    pharmacy.goto(f"/#/threads/{tid}")
    expect(pharmacy.locator("#btg-panel-title")).to_have_text("Vous ne participez pas à ce fil")
    pharmacy.get_by_role("button", name="Accès d'urgence (bris de glace)").click()
    dialog = pharmacy.get_by_role("dialog")
    expect(dialog).to_contain_text("journalisé")
    dialog.get_by_label("Motif de l'accès").fill("Urgence")
    dialog.get_by_role("button", name="Accéder au fil").click()
    expect(dialog).to_contain_text("au moins 20 caractères")
    dialog.get_by_label("Motif de l'accès").fill("Appel du patient, saignement sous anticoagulant")
    assert_accessible(pharmacy)
    dialog.get_by_role("button", name="Accéder au fil").click()
    expect(pharmacy.get_by_role("heading", level=1)).to_have_text("Anticoagulant")
    expect(pharmacy.locator(".thread-meta")).to_contain_text("Accès d'urgence jusqu'au")
    expect(pharmacy.locator("#composer")).to_have_count(0)
    expect(pharmacy.locator("#task-list li")).to_contain_text("Contrôler l'INR jeudi")
