/** A small playbook with a role (template, handler, become), as the conformance and bake tests use it. */
export const motdPlaybook: Record<string, string> = {
  "ansible/site.yml": `- name: configure the message of the day
  hosts: all
  become: true
  gather_facts: false
  roles: [motd]
`,
  "ansible/roles/motd/defaults/main.yml": "greeting: hello\n",
  "ansible/roles/motd/tasks/main.yml": `- name: find out who tasks run as
  ansible.builtin.command: id -un
  register: who
  changed_when: false
- name: write the motd from a template
  ansible.builtin.template: { src: motd.j2, dest: /etc/motd-kiln, mode: "0644" }
  notify: motd written
`,
  "ansible/roles/motd/handlers/main.yml": `- name: motd written
  ansible.builtin.shell: echo handler > /etc/motd-handler-ran
`,
  "ansible/roles/motd/templates/motd.j2": "{{ greeting }} from {{ inventory_hostname }} as {{ who.stdout }}\n",
};

export const failingPlaybook: Record<string, string> = {
  "failing/site.yml": `- hosts: all
  gather_facts: false
  tasks:
    - name: check the disk
      ansible.builtin.fail: { msg: "the disk is full" }
`,
};
